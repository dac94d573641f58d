"""Render a :class:`reports.document.ReportDocument` to HTML and to PDF.

HTML/CSS from a Jinja2 template, PDF with WeasyPrint: fonts are embedded as subsets
(Noto Sans CJK from Debian ``fonts-noto-cjk``), so the PDF shows the same glyphs on every
machine; charts are inline SVG with text as paths (:mod:`reports.charts`).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from reports.charts import bar_chart_svg
from reports.document import ReportDocument, signoff_lines

# WeasyPrint logs every layout step at INFO, matplotlib every categorical axis: keep the
# API's and the CLI's logs readable
for _name in ("weasyprint", "weasyprint.progress", "matplotlib.category", "fontTools"):
    logging.getLogger(_name).setLevel(logging.WARNING)
TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def charts(doc: ReportDocument) -> list[dict[str, str]]:
    """The document's charts as ``{"title", "src"}`` (SVG data URIs)."""
    out = []
    data = doc.chart_data
    if data.get("carriers"):
        out.append({"title": "分能源品种能耗 energy by carrier (tce)",
                    "src": _svg_uri(bar_chart_svg(data["carriers"], "", "tce"))})
    if "baseline" in data:
        base_label, base = data["baseline"]
        bars = [(f"基准年 {base_label}", base), (data["month"], data["current_tco2"])]
        out.append({"title": "与基准年同月对比 vs baseline year (tCO2, location-based)",
                    "src": _svg_uri(bar_chart_svg(bars, "", "tCO2",
                                                  ("#8a8a8a", "#2f7d4f")))})
    if data.get("monthly"):
        out.append({"title": "逐月碳排放 emissions per month (tCO2, location-based)",
                    "src": _svg_uri(bar_chart_svg(data["monthly"], "", "tCO2"))})
    return out


def to_html(doc: ReportDocument) -> str:
    """The report as a self-contained HTML page (no external asset)."""
    return _env.get_template("report.html").render(
        doc=doc, signoff=signoff_lines(doc.signoff), charts=charts(doc))


def to_pdf(doc: ReportDocument) -> bytes:
    """The report as PDF bytes (fonts embedded)."""
    from weasyprint import HTML

    pdf = HTML(string=to_html(doc), base_url=str(TEMPLATES)).write_pdf()
    assert pdf is not None
    return bytes(pdf)
