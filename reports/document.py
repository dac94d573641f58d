"""The report as data: sections of labelled, formatted figures (pure; no I/O, no clock).

A report is built from the monthly close as the reviewer verified it (the snapshot's JSON
for a frozen month, :func:`dataclasses.asdict` of :class:`analytics.monthly.MonthlyClose`
for live figures) plus what the close does not hold: the site's names, the scorecard, the
baseline year and the sign-off. Every figure is formatted here once, so the PDF, the Excel
workbook and the tests all see the same text.

Units: quantities in the carrier's canonical unit (kWh, m3, GJ, kg), energy in tce
(GB/T 2589-2020), emissions in tCO2 (the close holds kgCO2; divided by 1000 here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# carrier -> (Chinese, English, canonical unit)
CARRIER_NAMES: dict[str, tuple[str, str, str]] = {
    "grid_import": ("电网购电", "grid electricity", "kWh"),
    "grid_export": ("上网电量", "export to grid", "kWh"),
    "onsite_renewable": ("自发可再生电力", "on-site renewables", "kWh"),
    "natural_gas": ("天然气", "natural gas", "m3"),
    "heat": ("外购热力", "purchased heat", "GJ"),
    "diesel": ("柴油", "diesel", "kg"),
    "gasoline": ("汽油", "gasoline", "kg"),
    "lpg": ("液化石油气", "LPG", "kg"),
    "water": ("用水", "water", "m3"),
    "waste_heat": ("余热回收", "recovered waste heat", "GJ"),
    "ev_charging": ("电动汽车充电", "EV charging", "kWh"),
    "it_load": ("数据中心IT负荷", "data-centre IT load", "kWh"),
}

STATUS_NAMES: dict[str, str] = {
    "met": "达标 met",
    "at_risk": "有风险 at risk",
    "not_met": "未达标 not met",
    "no_data": "无数据 no data",
}


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with thousands separators and ``digits`` decimals; ``—`` for no value."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return "0" + text[2:] if text.startswith("-0") and float(value) == 0 else text


def pct(share: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage."""
    return "—" if share is None else f"{share * 100:.{digits}f} %"


def local_time(ts: datetime) -> str:
    """A UTC time as people read it: Asia/Shanghai, with the zone named."""
    return ts.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M (北京时间 UTC+8)")


@dataclass(frozen=True)
class Row:
    """One line of a table: label (Chinese and English) and its cells, already formatted."""

    label_zh: str
    label_en: str
    cells: tuple[str, ...]

    def texts(self) -> list[str]:
        return [self.label_zh, self.label_en, *self.cells]


@dataclass(frozen=True)
class Table:
    """A titled table with column headers."""

    title_zh: str
    title_en: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    note: str = ""

    def texts(self) -> list[str]:
        out = [self.title_zh, self.title_en, *self.headers]
        for r in self.rows:
            out.extend(r.texts())
        if self.note:
            out.append(self.note)
        return out


@dataclass(frozen=True)
class SignOff:
    """Who verified the figures, when, and the snapshot's hash."""

    state: str
    version: int | None = None
    sha256: str | None = None
    verified_by: str | None = None
    verified_at: datetime | None = None


@dataclass(frozen=True)
class ReportDocument:
    """Everything a report prints, in order."""

    title_zh: str
    title_en: str
    subtitle: str
    generated_at: str
    tables: tuple[Table, ...]
    signoff: SignOff
    chart_data: dict[str, Any] = field(default_factory=dict)

    def texts(self) -> list[str]:
        """Every string that the rendered report must show, for checking a rendering."""
        out = [self.title_zh, self.title_en, self.subtitle, self.generated_at]
        for t in self.tables:
            out.extend(t.texts())
        out.extend(signoff_lines(self.signoff))
        return [s for s in out if s]


def signoff_lines(s: SignOff) -> list[str]:
    """The sign-off block as lines of text."""
    if s.state == "disclosure":
        return ["状态 status: 由已核证的月度快照汇总 (assembled from verified monthly snapshots)"]
    if s.state != "verified":
        return [f"状态 status: {state_name(s.state)}；本报告为实时数据，未经核证 "
                "(live figures, not verified)"]
    lines = [f"状态 status: {state_name(s.state)}，版本 version {s.version}"]
    if s.verified_by:
        lines.append(f"核证人 verified by: {s.verified_by}")
    if s.verified_at:
        lines.append(f"核证时间 verified at: {local_time(s.verified_at)}")
    if s.sha256:
        lines.append(f"快照 SHA-256: {s.sha256}")
    return lines


def state_name(state: str) -> str:
    return {
        "draft": "草稿 draft",
        "submitted": "已提交 submitted",
        "returned": "已退回 returned",
        "verified": "已核证 verified",
        "live": "实时 live",
    }.get(state, state)


def _carrier_rows(close: Mapping[str, Any]) -> tuple[Row, ...]:
    rows = []
    for c in close.get("carriers", []):
        zh, en, unit = CARRIER_NAMES.get(c["carrier"], (c["carrier"], c["carrier"], ""))
        rows.append(Row(zh, en, (f"{fmt(c['quantity'], 2)} {unit}", fmt(c["energy_tce"], 3),
                                 pct(c.get("estimated_share", 0.0)), str(c.get("intervals", "")))))
    return tuple(rows)


def _scope_rows(close: Mapping[str, Any]) -> tuple[Row, ...]:
    s1 = close["scope1_kgco2"] / 1000.0
    loc = close["scope2_location_kgco2"] / 1000.0
    mkt = close["scope2_market_kgco2"] / 1000.0
    return (
        Row("范围一（直接排放）", "Scope 1 (direct)", (fmt(s1), fmt(s1))),
        Row("范围二（外购电力、热力）", "Scope 2 (purchased electricity, heat)",
            (fmt(loc), fmt(mkt))),
        Row("合计", "total", (fmt(s1 + loc), fmt(s1 + mkt))),
    )


def _total_rows(close: Mapping[str, Any], net_rule: bool) -> tuple[Row, ...]:
    s1 = close["scope1_kgco2"] / 1000.0
    rows = [
        Row("碳排放总量（基于位置）", "total emissions, location-based",
            (fmt(s1 + close["scope2_location_kgco2"] / 1000.0), "tCO2")),
        Row("碳排放总量（基于市场）", "total emissions, market-based",
            (fmt(s1 + close["scope2_market_kgco2"] / 1000.0), "tCO2")),
        Row("综合能源消费量", "energy consumption", (fmt(close["energy_tce"]), "tce")),
        Row("单位能耗碳排放", "emissions per unit energy",
            (fmt(close.get("location_tco2_per_tce")), "tCO2/tce")),
        Row("可再生能源消费占比", "renewable share", (pct(close["renewable_share"]), "")),
        Row("绿电交易电量", "green power", (fmt(close["green_power_kwh"], 0), "kWh")),
        Row("已注销绿证电量", "retired green certificates",
            (fmt(close["certificate_kwh"], 0), "kWh")),
    ]
    if net_rule:
        rows += [
            Row("碳汇", "carbon sinks", (fmt(close["sinks_tco2"]), "tCO2")),
            Row("购买的自愿减排量", "purchased reductions",
                (fmt(close["reductions_tco2"]), "tCO2")),
            Row("净排放量（基于位置，广东指引）", "net emissions, location (Guangdong guide)",
                (fmt(close["net_location_tco2"]), "tCO2")),
            Row("净排放量（基于市场，广东指引）", "net emissions, market (Guangdong guide)",
                (fmt(close["net_market_tco2"]), "tCO2")),
        ]
    return tuple(rows)


def _quality_rows(close: Mapping[str, Any], quarantined: int,
                  restatements: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    rows = [
        Row("数据完整率（最低表计）", "completeness (lowest meter)",
            (pct(close["completeness"]),
             "完整 complete" if close["complete"] else "不完整 incomplete (< 90 %)")),
        Row("每表应有时段数", "expected intervals per meter",
            (str(close["expected_intervals_per_meter"]), "")),
        Row("隔离的读数", "quarantined readings", (str(quarantined), "")),
        Row("修正次数", "corrections", (str(close.get("corrections", 0)), "")),
        Row("重述", "restatements", (str(len(restatements)), "")),
    ]
    for c in close.get("carriers", []):
        zh, en, _ = CARRIER_NAMES.get(c["carrier"], (c["carrier"], c["carrier"], ""))
        rows.append(Row(f"估算占比：{zh}", f"estimated share: {en}",
                        (pct(c.get("estimated_share", 0.0)), "")))
    return tuple(rows)


def _factor_rows(close: Mapping[str, Any]) -> tuple[Row, ...]:
    method_zh = {"location": "基于位置", "market": "基于市场"}
    return tuple(
        Row(method_zh.get(f["method"], f["method"]), f["method"],
            (f["factor_id"], str(f["factor_version"]), f"{f['factor_value']:g}",
             str(f["factor_unit"])))
        for f in close.get("factors", [])
    )


def _scorecard_rows(scorecard: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    rows = []
    for s in scorecard:
        value = s.get("value")
        rows.append(Row(
            str(s.get("name_zh", s.get("id", ""))), str(s.get("name_en", "")),
            (fmt(value) if isinstance(value, int | float) else str(value or "—"),
             str(s.get("unit", "")), str(s.get("target", "")),
             STATUS_NAMES.get(str(s.get("status", "")), str(s.get("status", ""))),
             "申报 declared" if s.get("declared") else "计量 metered")))
    return tuple(rows)


def monthly_report(
    close: Mapping[str, Any],
    *,
    site_name: str,
    site_type: str,
    generated_at: datetime,
    signoff: SignOff,
    scorecard: Sequence[Mapping[str, Any]] = (),
    baseline_month_tco2: float | None = None,
    baseline_year: int | None = None,
    quarantined: int = 0,
    restatements: Sequence[Mapping[str, Any]] = (),
    net_rule: bool = False,
) -> ReportDocument:
    """The monthly report of one site-month.

    ``close``: the close's fields (see :class:`analytics.monthly.MonthlyClose`);
    ``baseline_month_tco2``: the same calendar month of the baseline year [tCO2,
    location-based], for the trend; ``net_rule``: the site accounts net emissions (Guangdong
    guide, seed 003), so the net lines are printed.
    """
    month = close["month"]
    month_text = month.strftime("%Y-%m") if isinstance(month, date) else str(month)[:7]
    s1 = close["scope1_kgco2"] / 1000.0
    total_loc = s1 + close["scope2_location_kgco2"] / 1000.0
    tables = [
        Table("一、总量", "1. Totals", ("指标 item", "数值 value", "单位 unit"),
              _total_rows(close, net_rule)),
        Table("二、分能源品种（边界表计）", "2. By carrier (boundary meters)",
              ("能源品种 carrier", "用量 quantity", "折标煤 tce", "估算占比 estimated",
               "时段数 intervals"), _carrier_rows(close)),
        Table("三、分范围排放 (tCO2)", "3. By scope (tCO2)",
              ("范围 scope", "基于位置 location-based", "基于市场 market-based"),
              _scope_rows(close)),
    ]
    chart: dict[str, Any] = {
        "carriers": [(CARRIER_NAMES.get(c["carrier"], (c["carrier"],))[0], c["energy_tce"])
                     for c in close.get("carriers", [])],
        "month": month_text,
        "current_tco2": total_loc,
    }
    if baseline_month_tco2 is not None and baseline_year is not None:
        change = ((total_loc - baseline_month_tco2) / baseline_month_tco2
                  if baseline_month_tco2 > 0 else None)
        tables.append(Table(
            "四、与基准年对比", "4. Against the baseline year",
            ("期间 period", "碳排放（基于位置）tCO2", "变化 change"),
            (Row(f"基准年 {baseline_year} 同月", f"baseline {baseline_year}, same month",
                 (fmt(baseline_month_tco2), "")),
             Row(f"本月 {month_text}", "this month",
                 (fmt(total_loc), "—" if change is None else f"{change * 100:+.1f} %")))))
        chart["baseline"] = (str(baseline_year), baseline_month_tco2)
    if scorecard:
        tables.append(Table("五、指标评价", "5. Indicator scorecard",
                            ("指标 indicator", "数值 value", "单位 unit", "目标 target",
                             "状态 status", "来源 source"), _scorecard_rows(scorecard)))
    tables.append(Table("六、数据质量", "6. Data quality", ("项目 item", "数值 value", "说明 note"),
                        _quality_rows(close, quarantined, restatements)))
    tables.append(Table("七、排放因子（来源与版本）", "7. Emission factors (source and version)",
                        ("方法 method", "因子 factor", "版本 version", "数值 value",
                         "单位 unit"), _factor_rows(close)))
    return ReportDocument(
        title_zh=f"{site_name} 月度碳排放报告",
        title_en=f"Monthly carbon report, {close['site_id']}, {month_text}",
        subtitle=(f"试点类型 pilot type: {site_type}；"
                  f"核算月份 month: {month_text}（北京时间 local）"),
        generated_at=f"生成时间 generated: {local_time(generated_at)}",
        tables=tuple(tables),
        signoff=signoff,
        chart_data=chart,
    )


def yearly_disclosure(
    months: Sequence[Mapping[str, Any]],
    *,
    site_id: str,
    site_name: str,
    year: int,
    generated_at: datetime,
    self_evaluation: Sequence[Mapping[str, Any]] = (),
) -> ReportDocument:
    """The yearly public carbon disclosure, assembled only from *verified* months.

    ``months``: one mapping per verified month: the close's fields plus ``version`` and
    ``sha256`` of the snapshot. Months not verified are listed as missing, never estimated.
    ``self_evaluation``: per indicator ``name_zh``, ``name_en``, ``baseline``, ``current``,
    ``unit``, ``target``, ``status``.
    """
    rows = []
    tot_loc = tot_mkt = tot_tce = 0.0
    seen = set()
    for m in sorted(months, key=lambda m: str(m["month"])):
        key = str(m["month"])[:7]
        seen.add(key)
        loc = (m["scope1_kgco2"] + m["scope2_location_kgco2"]) / 1000.0
        mkt = (m["scope1_kgco2"] + m["scope2_market_kgco2"]) / 1000.0
        tot_loc, tot_mkt, tot_tce = tot_loc + loc, tot_mkt + mkt, tot_tce + m["energy_tce"]
        rows.append(Row(key, f"v{m.get('version', 1)}", (
            fmt(loc), fmt(mkt), fmt(m["energy_tce"]), pct(m["completeness"]),
            str(m.get("sha256", ""))[:12])))
    missing = [f"{year}-{mm:02d}" for mm in range(1, 13) if f"{year}-{mm:02d}" not in seen]
    rows.append(Row("全年合计（已核证月份）", "year, verified months",
                    (fmt(tot_loc), fmt(tot_mkt), fmt(tot_tce), "", "")))
    tables = [Table(
        "一、逐月已核证数据", "1. Verified months",
        ("月份 month", "基于位置 tCO2", "基于市场 tCO2", "能耗 tce", "完整率 complete",
         "快照 snapshot"), tuple(rows),
        note=("未核证月份（不计入）months not verified: " + ", ".join(missing)) if missing
        else "全部12个月均已核证 all 12 months verified")]
    if self_evaluation:
        tables.append(Table(
            "二、自评价指标（基准年与当前）", "2. Self-evaluation (baseline vs now)",
            ("指标 indicator", "基准年 baseline", "当前 now", "单位 unit", "目标 target",
             "状态 status"),
            tuple(Row(str(s["name_zh"]), str(s.get("name_en", "")), (
                fmt(s.get("baseline")), fmt(s.get("current")), str(s.get("unit", "")),
                str(s.get("target", "")),
                STATUS_NAMES.get(str(s.get("status", "")), str(s.get("status", "")))))
                  for s in self_evaluation)))
    return ReportDocument(
        title_zh=f"{site_name} {year}年度碳排放信息披露",
        title_en=f"Yearly carbon disclosure, {site_id}, {year}",
        subtitle="仅包含经核证的月度数据 (verified months only)",
        generated_at=f"生成时间 generated: {local_time(generated_at)}",
        tables=tuple(tables),
        signoff=SignOff(state="disclosure"),
        chart_data={"monthly": [(r.label_zh[-2:], float(r.cells[0].replace(",", "")))
                                for r in rows[:-1]]},
    )
