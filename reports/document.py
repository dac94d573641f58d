"""The report as data: sections of labelled, formatted figures (pure; no I/O, no clock).

A monthly report is built from the reviewers' close document
(:func:`analytics.review.month_document`: ``figures`` by name, each with its ``value``,
``unit`` and ``quality``): for a frozen month the snapshot's document, otherwise the live
one, exactly what the API's ``GET /api/v1/sites/{id}/months/{YYYY-MM}`` returns as ``close``;
plus what the close does not hold: the site's names, the checks, the scorecard, the
restatements, the baseline year and the sign-off. The yearly disclosure prints
:func:`analytics.review.annual_disclosure` and :func:`analytics.review.self_evaluation` (verified
months only). Every figure is formatted here once, so the PDF, the Excel workbook and the
tests all see the same text.

Units as the close states them: quantities in the carrier's canonical unit (kWh, m3, GJ, kg),
energy in tce (GB/T 2589-2020), emissions in tCO2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    # the indicators issue's spelling (carbon.indicators: "at risk", "not met", "no data")
    "at risk": "有风险 at risk",
    "not met": "未达标 not met",
    "no data": "无数据 no data",
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



FIGURE_NAMES: dict[str, tuple[str, str]] = {
    "energy_consumed": ("综合能源消费量", "energy consumption"),
    "scope1": ("范围一（直接排放）", "Scope 1 (direct)"),
    "scope2_location": ("范围二（基于位置）", "Scope 2, location-based"),
    "scope2_market": ("范围二（基于市场）", "Scope 2, market-based"),
    "total_location": ("碳排放总量（基于位置）", "total emissions, location-based"),
    "total_market": ("碳排放总量（基于市场）", "total emissions, market-based"),
    "sinks": ("碳汇", "carbon sinks"),
    "purchased_reductions": ("购买的自愿减排量", "purchased reductions"),
    "net_location": ("净排放量（基于位置，广东指引）", "net emissions, location (Guangdong guide)"),
    "net_market": ("净排放量（基于市场，广东指引）", "net emissions, market (Guangdong guide)"),
    "renewable_share": ("可再生能源消费占比", "renewable share"),
    "carbon_intensity_of_energy": ("单位能耗碳排放", "emissions per unit energy"),
}
TOTAL_ORDER = ("total_location", "total_market", "energy_consumed", "carbon_intensity_of_energy",
               "renewable_share", "sinks", "purchased_reductions", "net_location", "net_market")
CHECK_NAMES: dict[str, tuple[str, str]] = {
    "completeness": ("数据完整率", "completeness"),
    "daily_vs_monthly": ("日合计与月合计", "daily sums vs month"),
    "bills": ("账单核对", "utility bills"),
    "open_alerts": ("未关闭告警", "open alerts"),
}
RESTATEMENT_STATES = {"open": "待处理 open", "accepted": "已接受 accepted",
                      "rejected": "已驳回 rejected"}


def figure_label(name: str) -> tuple[str, str]:
    """(Chinese, English) label of a close figure name (``energy.<carrier>``,
    ``intensity.<kind>`` and the fixed names)."""
    if name.startswith("energy."):
        carrier = name.removeprefix("energy.")
        zh, en, _ = CARRIER_NAMES.get(carrier, (carrier, carrier, ""))
        return zh, en
    if name.startswith("intensity."):
        kind = name.removeprefix("intensity.")
        return f"碳排放强度（每{kind}）", f"emissions per {kind}, location-based"
    return FIGURE_NAMES.get(name, (name, name))


def value_text(fig: Mapping[str, Any]) -> str:
    """A figure's value as printed (3 decimals; the API's JSON holds the same number)."""
    return fmt(fig.get("value"))


def _totals(figs: Mapping[str, Any]) -> tuple[Row, ...]:
    names = [n for n in TOTAL_ORDER if n in figs]
    names += sorted(n for n in figs if n.startswith("intensity."))
    return tuple(Row(*figure_label(n), (value_text(figs[n]), str(figs[n]["unit"])))
                 for n in names)


def _carriers(figs: Mapping[str, Any]) -> tuple[Row, ...]:
    rows = []
    for name in sorted(n for n in figs if n.startswith("energy.")):
        f = figs[name]
        q = f.get("quality", {})
        rem = (f"{fmt(q['unmetered_remainder'], 3)} ({pct(q.get('unmetered_remainder_share'))})"
               if "unmetered_remainder" in q else "—")
        rows.append(Row(*figure_label(name), (
            value_text(f), str(f["unit"]), fmt(f.get("tce")), pct(q.get("completeness")),
            pct(q.get("estimated_share")), str(q.get("quarantined_readings", 0)), rem)))
    return tuple(rows)


def _scopes(figs: Mapping[str, Any]) -> tuple[Row, ...]:
    def v(name: str) -> str:
        return value_text(figs[name]) if name in figs else "—"

    return (
        Row(*FIGURE_NAMES["scope1"], (v("scope1"), v("scope1"))),
        Row("范围二（外购电力、热力）", "Scope 2 (purchased electricity, heat)",
            (v("scope2_location"), v("scope2_market"))),
        Row("合计", "total", (v("total_location"), v("total_market"))),
    )


def _checks(checks: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    rows = []
    for c in checks:
        zh, en = CHECK_NAMES.get(str(c["check"]), (str(c["check"]), str(c["check"])))
        verdict = "通过 PASS" if c["passed"] else "未通过 FAIL"
        rows.append(Row(f"{zh} {en}：{verdict}", str(c["message"]), ()))
    return tuple(rows)


def _meters(close: Mapping[str, Any]) -> tuple[Row, ...]:
    return tuple(
        Row(str(m["meter_id"]), "边界表 boundary" if m.get("boundary") else "分表 sub-meter", (
            CARRIER_NAMES.get(str(m["carrier"]), (str(m["carrier"]),))[0],
            pct(m.get("completeness")), str(m.get("measured", 0)), str(m.get("estimated", 0)),
            str(m.get("quarantined", 0))))
        for m in close.get("meters", []))


def _quality(close: Mapping[str, Any], restatements: Sequence[Mapping[str, Any]]
             ) -> tuple[Row, ...]:
    boundary = [m for m in close.get("meters", []) if m.get("boundary")]
    lowest = min((float(m["completeness"]) for m in boundary), default=None)
    q = close.get("figures", {}).get("energy_consumed", {}).get("quality", {})
    return (
        Row("数据完整率（最低边界表）", "completeness (lowest boundary meter)", (pct(lowest),)),
        Row("每表应有时段数", "expected intervals per meter",
            (str(close.get("expected_intervals_per_meter", "—")),)),
        Row("估算占比（边界表）", "estimated share (boundary meters)",
            (pct(q.get("estimated_share")),)),
        Row("隔离的读数", "quarantined readings",
            (str(sum(int(m.get("quarantined", 0)) for m in close.get("meters", []))),)),
        Row("修正次数", "corrections", (str(close.get("corrections", 0)),)),
        Row("重述", "restatements", (str(len(restatements)),)),
    )


def _factors(close: Mapping[str, Any]) -> tuple[Row, ...]:
    method_zh = {"location": "基于位置", "market": "基于市场"}
    return tuple(
        Row(method_zh.get(f["method"], f["method"]), f["method"],
            (f["factor_id"], str(f["factor_version"]), f"{f['factor_value']:g}",
             str(f["factor_unit"])))
        for f in close.get("factors", []))


def _scorecard(indicators: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    rows = []
    for s in indicators:
        value = s.get("value")
        rows.append(Row(
            str(s.get("name_zh", "")), str(s.get("name_en", "")),
            (fmt(value) if isinstance(value, int | float) else str(value or "—"),
             str(s.get("unit", "")), str(s.get("reference_text", "") or "—"),
             STATUS_NAMES.get(str(s.get("status", "")), str(s.get("status", ""))),
             str(s.get("kind", "")))))
    return tuple(rows)


def _restatement_tables(restatements: Sequence[Mapping[str, Any]]) -> list[Table]:
    out = []
    for r in restatements:
        rows = tuple(
            Row(*figure_label(str(d["figure"])), (fmt(d.get("old")), fmt(d.get("new")),
                                                 fmt(d.get("change")), str(d.get("unit", ""))))
            for d in r.get("differences", []))
        state = RESTATEMENT_STATES.get(str(r.get("state")), str(r.get("state")))
        out.append(Table(
            f"重述 #{r['restatement_id']}（自版本 {r.get('from_version')}）：{state}",
            f"restatement #{r['restatement_id']} (from version {r.get('from_version')})",
            ("数值 figure", "原值 old", "新值 new", "变化 change", "单位 unit"), rows,
            note=str(r.get("reason", ""))))
    return out


def monthly_report(
    close: Mapping[str, Any],
    *,
    site_name: str,
    site_type: str,
    generated_at: datetime,
    signoff: SignOff,
    checks: Sequence[Mapping[str, Any]] = (),
    scorecard: Sequence[Mapping[str, Any]] = (),
    baseline_month_tco2: float | None = None,
    baseline_year: int | None = None,
    restatements: Sequence[Mapping[str, Any]] = (),
) -> ReportDocument:
    """The monthly report of one site-month.

    ``close``: the close document (the snapshot's for a frozen month, else live);
    ``checks``: the month's checks as the close states them; ``scorecard``: indicator items
    (``name_zh, name_en, value, unit, reference_text, status, kind``); ``restatements``: the
    month's restatements (old vs new); ``baseline_month_tco2``: the same calendar month of the
    baseline year [tCO2, location-based], for the trend. The Guangdong net-emission lines
    appear because the close holds them only for sites whose rules use them.
    """
    figs: Mapping[str, Any] = close["figures"]
    month_text = str(close["month"])[:7]
    total_loc = float(figs["total_location"]["value"]) if "total_location" in figs else 0.0
    n = 1

    def title(zh: str, en: str) -> tuple[str, str]:
        nonlocal n
        out = (f"{_NUM[n]}、{zh}", f"{n}. {en}")
        n += 1
        return out

    tables = [
        Table(*title("总量", "Totals"), ("指标 item", "数值 value", "单位 unit"), _totals(figs)),
        Table(*title("分能源品种（边界表计）", "By carrier (boundary meters)"),
              ("能源品种 carrier", "用量 quantity", "单位 unit", "折标煤 tce",
               "完整率 complete", "估算占比 estimated", "隔离 quarantined",
               "未计量余量 unmetered"), _carriers(figs)),
        Table(*title("分范围排放 (tCO2)", "By scope (tCO2)"),
              ("范围 scope", "基于位置 location-based", "基于市场 market-based"), _scopes(figs)),
    ]
    chart: dict[str, Any] = {
        "carriers": [(figure_label(k)[0], float(f.get("tce") or 0.0))
                     for k, f in sorted(figs.items()) if k.startswith("energy.")],
        "month": month_text,
        "current_tco2": total_loc,
    }
    if baseline_month_tco2 is not None and baseline_year is not None:
        change = ((total_loc - baseline_month_tco2) / baseline_month_tco2
                  if baseline_month_tco2 > 0 else None)
        tables.append(Table(
            *title("与基准年对比", "Against the baseline year"),
            ("期间 period", "碳排放（基于位置）tCO2", "变化 change"),
            (Row(f"基准年 {baseline_year} 同月", f"baseline {baseline_year}, same month",
                 (fmt(baseline_month_tco2), "")),
             Row(f"本月 {month_text}", "this month",
                 (fmt(total_loc), "—" if change is None else f"{change * 100:+.1f} %")))))
        chart["baseline"] = (str(baseline_year), baseline_month_tco2)
    if scorecard:
        tables.append(Table(*title("指标评价", "Indicator scorecard"),
                            ("指标 indicator", "数值 value", "单位 unit", "参考 reference",
                             "状态 status", "类型 kind"), _scorecard(scorecard)))
    if checks:
        tables.append(Table(*title("提交前检查", "Checks before submission"),
                            ("检查与结果 check and result",), _checks(checks)))
    tables.append(Table(*title("数据质量", "Data quality"), ("项目 item", "数值 value"),
                        _quality(close, restatements)))
    tables.append(Table(*title("计量表", "Meters"),
                        ("表计 meter", "能源 carrier", "完整率 complete", "实测 measured",
                         "估算 estimated", "隔离 quarantined"), _meters(close)))
    tables.extend(_restatement_tables(restatements))
    tables.append(Table(*title("排放因子（来源与版本）", "Emission factors (source and version)"),
                        ("方法 method", "因子 factor", "版本 version", "数值 value",
                         "单位 unit"), _factors(close)))
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


_NUM = "〇一二三四五六七八九十"


def _ym(value: Any) -> str:
    return str(value)[:7]


def yearly_disclosure(
    disclosure: Mapping[str, Any],
    *,
    site_name: str,
    generated_at: datetime,
    months: Sequence[Mapping[str, Any]] = (),
    evaluation: Mapping[str, Any] | None = None,
) -> ReportDocument:
    """The yearly public carbon disclosure and the self-evaluation figures, from *verified*
    months only.

    ``disclosure``: :func:`analytics.review.annual_disclosure` (its totals are printed as
    they are, not summed again here); ``months``: per verified month ``month``, ``version``,
    ``sha256``, ``verified_by``, ``verified_at`` and ``figures`` (its snapshot's); months not
    verified are listed as missing, never estimated; ``evaluation``:
    :func:`analytics.review.self_evaluation` (baseline year vs this year).
    """
    year = int(disclosure["year"])
    month_rows = []
    for m in sorted(months, key=lambda m: _ym(m["month"])):
        f = m["figures"]
        month_rows.append(Row(_ym(m["month"]), f"v{m['version']} {m.get('verified_by', '')}", (
            value_text(f["total_location"]), value_text(f["total_market"]),
            value_text(f["energy_consumed"]),
            pct(f["energy_consumed"].get("quality", {}).get("completeness")))))
    missing = list(disclosure.get("missing_months", []))
    tables = [Table(
        "一、逐月已核证数据", "1. Verified months",
        ("月份 month", "基于位置 tCO2", "基于市场 tCO2", "能耗 tce", "完整率 complete"),
        tuple(month_rows),
        note=("未核证月份（不计入）months not verified: " + ", ".join(missing)) if missing
        else "全部12个月均已核证 all 12 months verified")]
    totals = disclosure.get("totals", {})
    names = [n for n in TOTAL_ORDER if n in totals]
    names += [n for n in ("scope1", "scope2_location", "scope2_market") if n in totals]
    names += sorted(n for n in totals if n.startswith("energy."))
    total_rows = [Row(*figure_label(n), (value_text(totals[n]), str(totals[n]["unit"]),
                                         str(totals[n].get("months", ""))))
                  for n in names]
    for n, it in sorted(disclosure.get("intensities", {}).items()):
        total_rows.append(Row(*figure_label(n), (
            value_text(it), str(it["unit"]),
            f"{'合计' if it.get('denominator_rule') == 'sum' else '平均'} "
            f"{it.get('denominator_rule', '')} {fmt(it.get('denominator'))}")))
    tables.append(Table("二、全年合计（已核证月份）", "2. Year totals (verified months)",
                        ("指标 item", "数值 value", "单位 unit", "月数 months"),
                        tuple(total_rows), note=str(disclosure.get("note", ""))))
    if evaluation is not None:
        tables.append(Table(
            f"三、自评价指标（基准年 {evaluation['baseline_year']} 与 "
            f"{evaluation['current_year']}）",
            "3. Self-evaluation (baseline year vs now)",
            ("指标 indicator", "基准年 baseline", "当前 now", "变化 change", "单位 unit"),
            tuple(Row(*figure_label(str(r["indicator"])), (
                fmt(r.get("baseline")), fmt(r.get("current")),
                "—" if r.get("change") is None else f"{float(r['change']) * 100:+.1f} %",
                str(r.get("unit", "")))) for r in evaluation.get("indicators", [])),
            note=(f"{evaluation.get('note', '')}；基准年完整 baseline complete: "
                  f"{'是 yes' if evaluation.get('baseline_complete') else '否 no'}；"
                  f"当前年完整 current complete: "
                  f"{'是 yes' if evaluation.get('current_complete') else '否 no'}")))
    tables.append(Table(
        "四、快照来源", "4. Snapshots (SHA-256)", ("月份 month", "SHA-256"),
        tuple(Row(_ym(m["month"]), f"v{m['version']}", (str(m["sha256"]),))
              for m in sorted(months, key=lambda m: _ym(m["month"])))))
    return ReportDocument(
        title_zh=f"{site_name} {year}年度碳排放信息披露",
        title_en=f"Yearly carbon disclosure, {disclosure['site_id']}, {year}",
        subtitle="仅包含经核证的月度数据 (verified months only)",
        generated_at=f"生成时间 generated: {local_time(generated_at)}",
        tables=tuple(tables),
        signoff=SignOff(state="disclosure"),
        chart_data={"monthly": [(r.label_zh[-2:], float(r.cells[0].replace(",", "")))
                                for r in month_rows]},
    )
