"""The reviewer's reports: the monthly PDF in Chinese and the yearly disclosure (PDF, Excel).

Rendered for real (WeasyPrint, Debian fonts-noto-cjk) and read back with poppler's tools:
fonts embedded (``pdffonts``), the text put in comes out again (``pdftotext``: no tofu, no
missing glyph), and a page renders to PNG (``pdftoppm``; kept under .state/artifacts).
Expected figures are worked by hand from the stated inputs, not taken from the code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from reports.document import SignOff, monthly_report, yearly_disclosure
from reports.excel import to_xlsx
from reports.render import to_pdf

ARTIFACTS = Path(__file__).resolve().parents[2] / ".state" / "artifacts"
NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 in Beijing

# A campus month, stated inputs: grid 120,000 kWh at 0.4476 kgCO2/kWh (Guangxi 2023) =
# 53,712 kgCO2 location-based; market-based 0.6096 (national excl. market, 2023) on the
# 110,000 kWh not covered by 10,000 kWh of retired certificates = 67,056 kgCO2; gas
# 2,000 m3 x 2.162 = 4,324 kgCO2 (Scope 1).
CLOSE = {
    "site_id": "campus-hc", "month": date(2026, 10, 1), "expected_intervals_per_meter": 2976,
    "carriers": [
        {"carrier": "grid_import", "quantity": 120000.0, "energy_tce": 14.748,
         "estimated_share": 0.0125, "intervals": 2976},
        {"carrier": "natural_gas", "quantity": 2000.0, "energy_tce": 2.66,
         "estimated_share": 0.0, "intervals": 2976},
    ],
    "complete": True, "completeness": 0.9875, "scope1_kgco2": 4324.0,
    "scope2_location_kgco2": 53712.0, "scope2_market_kgco2": 67056.0, "grid_kwh": 120000.0,
    "green_power_kwh": 0.0, "certificate_kwh": 10000.0, "unused_covered_kwh": 0.0,
    "onsite_generation_kwh": 0.0, "export_kwh": 0.0, "renewable_share": 0.0,
    "energy_tce": 17.408, "location_tco2_per_tce": 58.036 / 17.408, "sinks_tco2": 0.0,
    "reductions_tco2": 0.0, "net_location_tco2": 58.036, "net_market_tco2": 71.38,
    "factors": [
        {"method": "location", "factor_id": "grid.guangxi", "factor_version": "2023",
         "factor_value": 0.4476, "factor_unit": "kgCO2/kWh"},
        {"method": "market", "factor_id": "grid.national_excl_market", "factor_version": "2023",
         "factor_value": 0.6096, "factor_unit": "kgCO2/kWh"},
    ],
    "intensities": {}, "corrections": 2,
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} (Debian poppler-utils) is required; scripts/setup installs it"
    return path


def _pdf_text(pdf: Path) -> str:
    return subprocess.run([_tool("pdftotext"), str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _check_pdf(pdf_bytes: bytes, name: str, texts: list[str]) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = ARTIFACTS / f"{name}.pdf"
    pdf.write_bytes(pdf_bytes)
    fonts = subprocess.run([_tool("pdffonts"), str(pdf)], check=True, capture_output=True,
                           text=True).stdout.splitlines()[2:]
    assert fonts, "the PDF uses no font at all"
    for line in fonts:
        cols = line.split()
        # columns from the right: object ID (2), uni, sub, emb
        assert cols[-5] == "yes", f"font not embedded: {line}"
    extracted = _squash(_pdf_text(pdf))
    assert "\ufffd" not in extracted
    for t in texts:
        assert _squash(t) in extracted, f"text missing from the PDF (tofu?): {t!r}"
    subprocess.run([_tool("pdftoppm"), "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf),
                    str(ARTIFACTS / name)], check=True)
    pngs = list(ARTIFACTS.glob(f"{name}-*1.png"))
    assert pngs and pngs[0].stat().st_size > 10_000
    return extracted


def test_monthly_pdf_in_chinese_with_embedded_fonts_and_every_figure() -> None:
    doc = monthly_report(
        CLOSE, site_name="河池学院校园", site_type="campus", generated_at=NOW,
        signoff=SignOff("verified", 2, "ab" * 32, "reviewer-li", NOW),
        scorecard=[{"id": "per_capita", "name_zh": "人均碳排放", "name_en": "per capita",
                    "value": 0.0048, "unit": "tCO2/人", "target": "<= 3.5", "status": "met"}],
        baseline_month_tco2=80.0, baseline_year=2022, quarantined=4)
    text = _check_pdf(to_pdf(doc), "monthly", doc.texts())
    # figures worked by hand from the inputs above [tCO2]
    assert _squash("58.036") in text                  # 4.324 + 53.712, location-based
    assert _squash("71.380") in text                  # 4.324 + 67.056, market-based
    assert _squash("-27.5 %") in text                 # (58.036 - 80) / 80
    assert "生成时间generated:2026-12-0100:00" in text  # Beijing time
    assert "ab" * 32 in text and "reviewer-li" in text
    assert "净排放量" not in text  # no Guangdong net line for a Guangxi campus


def test_net_emission_lines_only_where_the_site_rules_use_them() -> None:
    doc = monthly_report(CLOSE, site_name="社区", site_type="community", generated_at=NOW,
                         signoff=SignOff("live"), net_rule=True)
    labels = [r.label_zh for t in doc.tables for r in t.rows]
    assert "净排放量（基于位置，广东指引）" in labels
    assert any("未经核证" in line for line in doc.texts())


def test_yearly_disclosure_from_verified_months_only(tmp_path: Path) -> None:
    months = [
        dict(CLOSE, month=date(2026, 1, 1), version=1, sha256="1" * 64),
        dict(CLOSE, month=date(2026, 2, 1), version=2, sha256="2" * 64,
             scope1_kgco2=1000.0, scope2_location_kgco2=2000.0, scope2_market_kgco2=2500.0,
             energy_tce=1.5, completeness=0.95),
    ]
    evaluation = [{"name_zh": "碳排放总量降低率", "name_en": "reduction vs baseline",
                   "baseline": 700.0, "current": 61.036, "unit": "tCO2", "target": ">= 30 %",
                   "status": "no_data"}]
    doc = yearly_disclosure(months, site_id="campus-hc", site_name="河池学院校园", year=2026,
                            generated_at=NOW, self_evaluation=evaluation)
    text = _check_pdf(to_pdf(doc), "yearly", doc.texts())
    assert _squash("61.036") in text   # 58.036 + 3.000 tCO2, location-based
    assert _squash("74.880") in text   # 71.380 + 3.500, market-based
    assert "2026-03" in text and "2026-12" in text  # listed as not verified
    xlsx = to_xlsx(doc, tmp_path / "yearly.xlsx")
    wb = openpyxl.load_workbook(xlsx)
    ws = wb.worksheets[1]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[1][:3] == ("项目 item (zh)", "item (en)", "基于位置 tCO2")
    by_month = {r[0]: r for r in rows[2:] if r[0]}
    assert by_month["2026-02"][2] == pytest.approx(3.0)
    assert by_month["全年合计（已核证月份）"][2] == pytest.approx(61.036)
    assert by_month["全年合计（已核证月份）"][4] == pytest.approx(18.908)  # 17.408 + 1.5 tce
