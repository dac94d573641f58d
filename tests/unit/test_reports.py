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

# A campus month, stated inputs (the close document's format, as the API returns it):
# grid 120,000 kWh at 0.4476 kgCO2/kWh (Guangxi 2023) = 53.712 tCO2 location-based;
# market-based 0.6096 (national excl. market, 2023) on the 110,000 kWh not covered by
# 10,000 kWh of retired certificates = 67.056 tCO2; gas 2,000 m3 x 2.162 kg = 4.324 tCO2
# (Scope 1). Totals typed in by hand: 4.324 + 53.712 = 58.036, 4.324 + 67.056 = 71.380.
Q = {"completeness": 0.9875, "estimated_share": 0.0125, "quarantined_readings": 4}
CLOSE = {
    "site_id": "campus-hc", "month": "2026-10", "timezone": "Asia/Shanghai",
    "expected_intervals_per_meter": 2976,
    "figures": {
        "energy.grid_import": {"value": 120000.0, "unit": "kWh", "tce": 14.748,
                               "quality": {**Q, "unmetered_remainder": 1800.0,
                                           "unmetered_remainder_share": 0.015}},
        "energy.natural_gas": {"value": 2000.0, "unit": "m3", "tce": 2.66,
                               "quality": {"completeness": 1.0, "estimated_share": 0.0,
                                           "quarantined_readings": 0}},
        "energy_consumed": {"value": 17.408, "unit": "tce", "quality": Q},
        "scope1": {"value": 4.324, "unit": "tCO2", "quality": Q},
        "scope2_location": {"value": 53.712, "unit": "tCO2", "quality": Q},
        "scope2_market": {"value": 67.056, "unit": "tCO2", "quality": Q},
        "total_location": {"value": 58.036, "unit": "tCO2", "quality": Q},
        "total_market": {"value": 71.38, "unit": "tCO2", "quality": Q},
        "sinks": {"value": 0.0, "unit": "tCO2", "quality": {}},
        "purchased_reductions": {"value": 0.0, "unit": "tCO2", "quality": {}},
        "renewable_share": {"value": 0.0, "unit": "%", "quality": Q},
    },
    "meters": [
        {"meter_id": "hc-grid", "carrier": "grid_import", "boundary": True,
         "completeness": 0.9875, "measured": 2939, "estimated": 37, "quarantined": 4},
        {"meter_id": "hc-gas", "carrier": "natural_gas", "boundary": True,
         "completeness": 1.0, "measured": 2976, "estimated": 0, "quarantined": 0},
    ],
    "factors": [
        {"method": "location", "factor_id": "grid.guangxi", "factor_version": "2023",
         "factor_value": 0.4476, "factor_unit": "kgCO2/kWh"},
        {"method": "market", "factor_id": "grid.national_excl_market", "factor_version": "2023",
         "factor_value": 0.6096, "factor_unit": "kgCO2/kWh"},
    ],
    "corrections": 2,
}
CHECKS = [
    {"check": "completeness", "passed": True, "numbers": {"lowest": 0.9875},
     "message": "全部 2 个边界计量表完整率不低于 90% / all 2 boundary meters at least 90% "
                "complete (lowest hc-grid 98.8% of 2976 intervals)"},
    {"check": "bills", "passed": False, "numbers": {},
     "message": "账单与计量不一致（容差 2%） / bills do not reconcile with the meters"},
]
RESTATEMENT = {"restatement_id": 7, "from_version": 1, "state": "accepted",
               "reason": "冻结月份数据变化 / frozen month's data changed: 1 energy intervals",
               "differences": [{"figure": "scope1", "unit": "tCO2", "old": 4.2, "new": 4.324,
                                "change": 0.124}]}


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
    # pdftotext joins a line that ends in "-" with the next and drops the hyphen (it takes it
    # for a hyphenated word), so hyphens are left out of this comparison only
    unhyphenated = extracted.replace("-", "")
    for t in texts:
        assert _squash(t).replace("-", "") in unhyphenated, \
            f"text missing from the PDF (tofu?): {t!r}"
    subprocess.run([_tool("pdftoppm"), "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf),
                    str(ARTIFACTS / name)], check=True)
    pngs = list(ARTIFACTS.glob(f"{name}-*1.png"))
    assert pngs and pngs[0].stat().st_size > 10_000
    return extracted


def test_monthly_pdf_in_chinese_with_embedded_fonts_and_every_figure() -> None:
    doc = monthly_report(
        CLOSE, site_name="河池学院校园", site_type="campus", generated_at=NOW,
        signoff=SignOff("verified", 2, "ab" * 32, "reviewer-li", NOW), checks=CHECKS,
        scorecard=[{"name_zh": "人均碳排放", "name_en": "per capita", "value": 0.0048,
                    "unit": "tCO2/人", "reference_text": "<= 3.5", "status": "met",
                    "kind": "metered"}],
        baseline_month_tco2=80.0, baseline_year=2022, restatements=[RESTATEMENT])
    text = _check_pdf(to_pdf(doc), "monthly", doc.texts())
    assert _squash("58.036") in text                  # 4.324 + 53.712, location-based
    assert _squash("71.380") in text                  # 4.324 + 67.056, market-based
    assert _squash("-27.5 %") in text                 # (58.036 - 80) / 80
    assert _squash("120,000.000") in text and _squash("1,800.000 (1.5 %)") in text
    assert "生成时间generated:2026-12-0100:00" in text  # Beijing time
    assert "ab" * 32 in text and "reviewer-li" in text
    assert "未通过FAIL" in text and "人均碳排放" in text
    assert _squash("4.200") in text and _squash("0.124") in text  # restatement old, change
    assert "净排放量" not in text  # the close holds no net line for a Guangxi campus


def test_net_lines_printed_when_the_close_holds_them_and_live_marked() -> None:
    figures = {**CLOSE["figures"],  # type: ignore[dict-item]
               "net_location": {"value": 58.036, "unit": "tCO2", "quality": Q}}
    doc = monthly_report({**CLOSE, "figures": figures}, site_name="社区",
                         site_type="community", generated_at=NOW, signoff=SignOff("submitted"))
    labels = [r.label_zh for t in doc.tables for r in t.rows]
    assert "净排放量（基于位置，广东指引）" in labels
    assert any("未经核证" in line and "已提交" in line for line in doc.texts())


def test_yearly_disclosure_from_verified_months_only(tmp_path: Path) -> None:
    feb = {**CLOSE["figures"],  # type: ignore[dict-item]
           "total_location": {"value": 3.0, "unit": "tCO2"},
           "total_market": {"value": 3.5, "unit": "tCO2"},
           "energy_consumed": {"value": 1.5, "unit": "tce", "quality": {"completeness": 0.95}}}
    months = [{"month": date(2026, 1, 1), "version": 1, "sha256": "1" * 64,
               "verified_by": "li", "figures": CLOSE["figures"]},
              {"month": date(2026, 2, 1), "version": 2, "sha256": "2" * 64,
               "verified_by": "li", "figures": feb}]
    # the close's disclosure: totals summed by analytics.review (typed in here by hand)
    disclosure = {"site_id": "campus-hc", "year": 2026, "complete": False,
                  "verified_months": ["2026-01", "2026-02"],
                  "missing_months": [f"2026-{m:02d}" for m in range(3, 13)],
                  "note": "仅含已核证月份 / verified months only",
                  "totals": {"total_location": {"value": 61.036, "unit": "tCO2", "months": 2},
                             "total_market": {"value": 74.88, "unit": "tCO2", "months": 2},
                             "energy_consumed": {"value": 18.908, "unit": "tce",
                                                 "months": 2}},
                  "intensities": {}}
    evaluation = {"baseline_year": 2022, "current_year": 2026, "baseline_complete": True,
                  "current_complete": False, "note": "verified months only",
                  "indicators": [{"indicator": "total_location", "unit": "tCO2",
                                  "baseline": 700.0, "current": 61.036,
                                  "change": (61.036 - 700.0) / 700.0}]}
    doc = yearly_disclosure(disclosure, site_name="河池学院校园", generated_at=NOW,
                            months=months, evaluation=evaluation)
    text = _check_pdf(to_pdf(doc), "yearly", doc.texts())
    assert _squash("61.036") in text and _squash("74.880") in text
    assert _squash("-91.3 %") in text  # (61.036 - 700) / 700
    assert "2026-03" in text and "2026-12" in text  # listed as not verified
    assert "2" * 64 in text
    xlsx = to_xlsx(doc, tmp_path / "yearly.xlsx")
    wb = openpyxl.load_workbook(xlsx)
    rows = list(wb.worksheets[1].iter_rows(values_only=True))
    assert rows[1][:3] == ("项目 item (zh)", "item (en)", "基于位置 tCO2")
    by_month = {r[0]: r for r in rows[2:] if r[0]}
    assert by_month["2026-02"][2] == pytest.approx(3.0)
    totals = {r[0]: r for r in wb.worksheets[2].iter_rows(values_only=True) if r[0]}
    assert totals["综合能源消费量"][2] == pytest.approx(18.908)


def test_scorecard_is_optional_and_called_with_the_month(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """``analytics.scorecard`` (issue 11) is not in every build: without it the report has
    no scorecard section; with it, ``scorecard_for_site(url, site, "YYYY-MM", now, method)``
    gives the indicators printed."""
    import sys
    import types

    from reports.build import scorecard_items

    monkeypatch.setitem(sys.modules, "analytics.scorecard", None)  # import fails
    assert scorecard_items("postgresql://x", "s", date(2026, 10, 1), NOW) == []
    calls = []

    def scorecard_for_site(url: str, site: str, period: str, now: datetime, method: str
                           ) -> dict[str, object]:
        calls.append((url, site, period, now, method))
        if site == "unknown":
            raise ValueError("unknown site")
        return {"indicators": [{"name_zh": "人均碳排放", "name_en": "per capita",
                                "value": 0.2, "unit": "tCO2/人", "reference_text": "<= 3.5",
                                "status": "at risk", "kind": "metered"}]}

    module = types.ModuleType("analytics.scorecard")
    module.scorecard_for_site = scorecard_for_site  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "analytics.scorecard", module)
    items = scorecard_items("postgresql://x", "s", date(2026, 10, 1), NOW)
    assert calls == [("postgresql://x", "s", "2026-10", NOW, "location")]
    assert scorecard_items("postgresql://x", "unknown", date(2026, 10, 1), NOW) == []
    doc = monthly_report(CLOSE, site_name="x", site_type="park", generated_at=NOW,
                         signoff=SignOff("draft"), scorecard=items)
    rows = {r.label_zh: r.cells for t in doc.tables for r in t.rows}
    assert rows["人均碳排放"] == ("0.200", "tCO2/人", "<= 3.5", "有风险 at risk", "metered")
