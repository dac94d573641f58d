"""Reports as Excel workbooks (openpyxl): one sheet per table of the document, numbers
written as numbers where the cell is one, with the unit in the header."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

from reports.document import ReportDocument, signoff_lines


def _number(text: str) -> float | str:
    """A formatted figure back to a number ("1,234.5" -> 1234.5); other text unchanged."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return text


def to_xlsx(doc: ReportDocument, path: Path) -> Path:
    """Write the document's tables to ``path`` (one sheet each) and return it."""
    wb = Workbook()
    info = wb.active
    assert info is not None
    info.title = "说明 info"
    for line in (doc.title_zh, doc.title_en, doc.subtitle, doc.generated_at,
                 *signoff_lines(doc.signoff)):
        info.append([line])
    info["A1"].font = Font(bold=True, size=14)
    for i, table in enumerate(doc.tables, start=1):
        ws = wb.create_sheet(f"{i} {table.title_en.split('. ', 1)[-1]}"[:31])
        ws.append([table.title_zh, table.title_en])
        ws.append(["项目 item (zh)", "item (en)", *table.headers[1:]])
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for row in table.rows:
            ws.append([row.label_zh, row.label_en, *(_number(c) for c in row.cells)])
        if table.note:
            ws.append([table.note])
    wb.save(path)
    return path
