"""The scorecard of a pilot site: every applicable indicator with its value, reference,
status, the completeness behind it, the trace of every number, and acceptance readiness.

Computed with polars from the monthly rollups (``db.scorecard.scorecard_inputs``) for one
period: ``mtd`` (month to date), ``ytd`` (year to date), ``r12`` (the rolling 12 months: the
current month to date and the 11 before it) or a closed month ``YYYY-MM``. Months are local
(Asia/Shanghai) months, as the rollups and reviewers count them. The indicator definitions and
formulas are in :mod:`carbon.indicators` (data file ``carbon/indicators.yaml``).

Acceptance readiness (DOMAIN.md section 5-6): every core indicator met (metered in the
period, and declared), and at least ``stable_operation_months`` (3, seed 003 line 111) closed
months in a row, ending with the latest closed month of the period, in which every metered
core indicator met its reference on data at least 90 % complete.

Entry point for the API and the dashboards::

    scorecard_for_site(reader_url, site_id, period="ytd", now=None, method="location") -> dict

(shape in :func:`build_scorecard`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from carbon.indicators import (
    AT_RISK,
    CORE,
    MET,
    METHODS,
    NO_DATA,
    STATUS_ZH,
    TYPE_ZH,
    BaselineValue,
    CarrierTotal,
    Catalogue,
    Declaration,
    DenominatorEntry,
    IndicatorResult,
    PeriodInputs,
    compute,
    judge_declared,
    load_catalogue,
    market_scope2_month,
)

TZ = "Asia/Shanghai"
OFFSET_KINDS = ("ccer", "phcer", "chengdu_reduction")


def _add_months(d: date, n: int) -> date:
    k = d.year * 12 + d.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def month_start_utc(month: date, tz: str = TZ) -> datetime:
    """UTC instant the local month holding ``month`` begins."""
    return datetime(month.year, month.month, 1, tzinfo=ZoneInfo(tz)).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """A scorecard period: local months, [start, end) in UTC (end <= now)."""

    kind: str
    label: str
    start: datetime
    end: datetime
    months: tuple[date, ...]
    days_in_year: float

    @property
    def days(self) -> float:
        """Elapsed days of the period [d]."""
        return max((self.end - self.start).total_seconds(), 0.0) / 86400.0


def _months(first: date, last: date) -> tuple[date, ...]:
    out = [first]
    while out[-1] < last:
        out.append(_add_months(out[-1], 1))
    return tuple(out)


def period_for(spec: str, now: datetime) -> Period:
    """The period ``spec`` (``mtd``, ``ytd``, ``r12`` or ``YYYY-MM``) as seen at ``now``."""
    if now.tzinfo is None:
        raise ValueError(f"now={now!r}: a timezone-aware datetime is required")
    local = now.astimezone(ZoneInfo(TZ))
    cur = date(local.year, local.month, 1)

    def year_days(y: int) -> float:
        return float((date(y + 1, 1, 1) - date(y, 1, 1)).days)

    if spec == "mtd":
        return Period("mtd", f"{cur:%Y-%m} 月初至今 month to date", month_start_utc(cur), now,
                      (cur,), year_days(cur.year))
    if spec == "ytd":
        first = date(cur.year, 1, 1)
        return Period("ytd", f"{cur.year} 年初至今 year to date", month_start_utc(first), now,
                      _months(first, cur), year_days(cur.year))
    if spec == "r12":
        first = _add_months(cur, -11)
        return Period("r12", f"{first:%Y-%m}..{cur:%Y-%m} 滚动12个月 rolling 12 months",
                      month_start_utc(first), now, _months(first, cur),
                      float((cur - _add_months(cur, -12)).days))
    try:
        y, m = (int(p) for p in spec.split("-"))
        month = date(y, m, 1)
    except ValueError:
        raise ValueError(f"period {spec!r}: expected mtd, ytd, r12 or YYYY-MM") from None
    if month > cur:
        raise ValueError(f"period {spec}: the month has not begun yet")
    end = min(month_start_utc(_add_months(month, 1)), now)
    kind = "month" if month < cur else "mtd"
    return Period(kind, f"{month:%Y-%m}" + (" 已结月 closed month" if month < cur else
                                           " 月初至今 month to date"),
                  month_start_utc(month), end, (month,), year_days(month.year))


def ytd_of(period: Period) -> Period:
    """The year to date that ends where ``period`` ends (for the year-end projection)."""
    last = period.months[-1]
    first = date(last.year, 1, 1)
    return Period("ytd", f"{last.year} YTD", month_start_utc(first), period.end,
                  _months(first, last), float((date(last.year + 1, 1, 1) - first).days))


def month_period(month: date, now: datetime) -> Period:
    """One local month, up to ``now`` if it is still running."""
    end = min(month_start_utc(_add_months(month, 1)), now)
    return Period("month", f"{month:%Y-%m}", month_start_utc(month), end, (month,),
                  float((date(month.year + 1, 1, 1) - date(month.year, 1, 1)).days))


# --- inputs from the rollup rows (polars) --------------------------------------------------

_SCHEMAS: dict[str, dict[str, Any]] = {
    "energy": {"month": pl.Date, "carrier": pl.String, "quantity": pl.Float64,
               "estimated_quantity": pl.Float64, "energy_tce": pl.Float64,
               "covered_s": pl.Float64},
    "carrier_emissions": {"month": pl.Date, "carrier": pl.String, "method": pl.String,
                          "emissions_kgco2": pl.Float64},
    "scopes": {"month": pl.Date, "method": pl.String, "scope1_kgco2": pl.Float64,
               "scope2_kgco2": pl.Float64},
    "data_centre": {"month": pl.Date, "it_load_kwh": pl.Float64, "it_covered_s": pl.Float64,
                    "it_meters": pl.Int64, "data_centre_kwh": pl.Float64},
    "instruments": {"instrument_id": pl.String, "kind": pl.String, "quantity": pl.Float64,
                    "unit": pl.String, "period_start": pl.Date, "period_end": pl.Date,
                    "vintage": pl.Int64, "retired": pl.Boolean, "registry": pl.String},
}


def frames(data: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, pl.DataFrame]:
    """Polars frames of the rollup rows (empty frames with the right columns when none)."""
    out = {}
    for key, schema in _SCHEMAS.items():
        rows = [{k: r.get(k) for k in schema} for r in data.get(key, ())]
        out[key] = (pl.DataFrame(rows, schema=schema, orient="row") if rows
                    else pl.DataFrame(schema=schema))
    return out


def month_share(instruments: pl.DataFrame, month: date, kinds: tuple[str, ...]) -> float:
    """Sum of the instruments of ``kinds`` allocated to ``month`` [their unit]: each spread
    evenly over its months, certificates only when retired (as the monthly close does)."""
    total = 0.0
    for row in instruments.filter(pl.col("kind").is_in(list(kinds))
                                  & pl.col("retired")).iter_rows(named=True):
        start, end = row["period_start"], row["period_end"]
        if start <= month <= end:
            n = (end.year - start.year) * 12 + end.month - start.month + 1
            total += row["quantity"] / n
    return total


def _sum(df: pl.DataFrame, col: str) -> float:
    return float(df[col].sum()) if len(df) else 0.0


def build_inputs(period: Period, data: Mapping[str, Sequence[Mapping[str, Any]]],
                 fr: Mapping[str, pl.DataFrame] | None = None,
                 factors: Sequence[Mapping[str, Any]] = ()) -> PeriodInputs:
    """Aggregate the monthly rollup rows of ``period`` into :class:`PeriodInputs`.

    Carrier totals sum the period's months (boundary meters); every boundary carrier of the
    registry is present, with zero quantity when it reported nothing, so that completeness
    sees the gap. Market-based Scope 2 is computed month by month
    (:func:`carbon.indicators.market_scope2_month`); instruments, sinks and reductions of a
    month still running are prorated by the elapsed share of the month.
    """
    fr = dict(fr) if fr is not None else frames(data)
    months = list(period.months)
    energy = fr["energy"].filter(pl.col("month").is_in(months))
    per_carrier = energy.group_by("carrier").agg(
        pl.col("quantity").sum(), pl.col("estimated_quantity").sum(),
        pl.col("energy_tce").sum(), pl.col("covered_s").sum())
    meters = {r["carrier"]: int(r["boundary"]) for r in data.get("meters", ())}
    totals = {c: CarrierTotal(0.0, 0.0, 0.0, 0.0, n) for c, n in meters.items() if n > 0}
    for r in per_carrier.iter_rows(named=True):
        totals[r["carrier"]] = CarrierTotal(r["quantity"] or 0.0, r["estimated_quantity"] or 0.0,
                                            r["energy_tce"] or 0.0, r["covered_s"] or 0.0,
                                            max(meters.get(r["carrier"], 1), 1))
    scopes = fr["scopes"].filter(pl.col("month").is_in(months))
    loc = scopes.filter(pl.col("method") == "location")
    cem = fr["carrier_emissions"]
    instruments = fr["instruments"]
    s2_market = green_used = cert_used = sinks = reductions = 0.0
    shares: dict[date, float] = {}
    for m in months:
        mstart, mend = month_start_utc(m), month_start_utc(_add_months(m, 1))
        share = min(1.0, max(0.0, (min(mend, period.end) - mstart) / (mend - mstart)))
        shares[m] = share
        grid_kwh = _sum(energy.filter((pl.col("month") == m)
                                      & (pl.col("carrier") == "grid_import")), "quantity")
        grid_mkt = _sum(cem.filter((pl.col("month") == m) & (pl.col("carrier") == "grid_import")
                                   & (pl.col("method") == "market")), "emissions_kgco2")
        mkt_s2 = _sum(scopes.filter((pl.col("month") == m) & (pl.col("method") == "market")),
                      "scope2_kgco2")
        green = month_share(instruments, m, ("green_power",)) * 1000.0 * share
        cert = month_share(instruments, m, ("green_certificate",)) * 1000.0 * share
        s2, g, c = market_scope2_month(grid_kwh, grid_mkt, mkt_s2 - grid_mkt, green, cert)
        s2_market += s2
        green_used += g
        cert_used += c
        sinks += month_share(instruments, m, ("carbon_sink",)) * share
        reductions += month_share(instruments, m, OFFSET_KINDS) * share
    dens: dict[str, list[DenominatorEntry]] = {}
    for d in data.get("denominators", ()):
        if d["month"] <= months[-1]:
            dens.setdefault(d["kind"], []).append(
                DenominatorEntry(d["month"], float(d["value"]), d.get("source")))
    dc = fr["data_centre"].filter(pl.col("month").is_in(months))
    it_meters = sum(int(r["total"]) for r in data.get("meters", ()) if r["carrier"] == "it_load")
    it_kwh = _sum(dc, "it_load_kwh") if len(dc) else None
    dc_kwh = (_sum(dc.drop_nulls("data_centre_kwh"), "data_centre_kwh")
              if len(dc) and dc["data_centre_kwh"].null_count() < len(dc) else None)
    it_completeness = (min(1.0, _sum(dc, "it_covered_s") / (it_meters * period.days * 86400.0))
                       if it_meters and period.days > 0 and len(dc) else None)
    return PeriodInputs(
        label=period.label, months=period.months, days=period.days,
        days_in_year=period.days_in_year, carriers=totals,
        scope1_kgco2=_sum(loc, "scope1_kgco2"), scope2_location_kgco2=_sum(loc, "scope2_kgco2"),
        scope2_market_kgco2=s2_market + 0.0, green_used_kwh=green_used,
        certificate_used_kwh=cert_used, sinks_tco2=sinks, reductions_tco2=reductions,
        denominators=dens, it_load_kwh=it_kwh, data_centre_kwh=dc_kwh,
        it_completeness=it_completeness, factors=list(factors),
        period_start=period.start.isoformat(), period_end=period.end.isoformat(),
        month_shares=shares)


def month_to_date(data: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime
                  ) -> PeriodInputs:
    """Inputs of the local month holding ``now``, up to ``now``."""
    return build_inputs(period_for("mtd", now), data)


def year_to_date(data: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime
                 ) -> PeriodInputs:
    """Inputs of the local year holding ``now``, up to ``now``."""
    return build_inputs(period_for("ytd", now), data)


def rolling_12_months(data: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime
                      ) -> PeriodInputs:
    """Inputs of the current month to date and the 11 months before it."""
    return build_inputs(period_for("r12", now), data)


def closed_months(data: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime,
                  n: int = 12) -> list[PeriodInputs]:
    """Inputs of each of the last ``n`` closed local months, oldest first."""
    local = now.astimezone(ZoneInfo(TZ))
    current = date(local.year, local.month, 1)
    fr = frames(data)
    return [build_inputs(month_period(_add_months(current, -k), now), data, fr)
            for k in range(n, 0, -1)]


# --- the scorecard ------------------------------------------------------------------------


def _baselines(data: Mapping[str, Sequence[Mapping[str, Any]]], year: int
               ) -> dict[str, BaselineValue]:
    return {r["kind"]: BaselineValue(int(r["year"]), r["kind"], float(r["value"]), r["source"],
                                     r["method"])
            for r in data.get("baselines", ()) if int(r["year"]) == year}


def _row(ind: Any, res: IndicatorResult, method: str) -> dict[str, Any]:
    return {
        "id": ind.id, "name_zh": ind.name_zh, "name_en": ind.name_en, "kind": res.kind,
        "type": ind.type, "type_zh": TYPE_ZH[ind.type], "unit": ind.unit,
        "direction": getattr(ind, "direction", None), "method": method,
        "value": res.value, "value_by_method": res.value_by_method,
        "reference": res.reference, "reference_text": ind.reference_text,
        "reference_source": res.reference_source, "status": res.status,
        "status_zh": STATUS_ZH[res.status], "completeness": res.completeness,
        "estimated_share": res.estimated_share, "notes": res.notes, "trace": res.trace,
        "projection": res.projection,
    }


def build_scorecard(site: Mapping[str, Any], period: Period,
                    data: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime, *,
                    method: str = "location", factors: Sequence[Mapping[str, Any]] = (),
                    catalogue: Catalogue | None = None) -> dict[str, Any]:
    """The scorecard of one site and period from its rollup rows (pure).

    Returns ``{"site": {site_id, name, site_type, province, city, baseline_year},
    "period": {kind, label, start, end (UTC ISO), months [YYYY-MM], days},
    "computed_at" (UTC ISO), "method" (primary Scope 2 method),
    "indicators": [{id, name_zh, name_en, kind (metered|declared), type (core|general|
    guiding), type_zh, unit, direction, method, value, value_by_method {location, market},
    reference, reference_text, reference_source, status (met|at risk|not met|no data),
    status_zh, completeness (0-1 or None), estimated_share (0-1 or None), notes [text],
    trace {period, formula, quantities, emissions, instruments, factors, denominators,
    baseline, ...}, projection {ytd_tco2, projected_year_tco2, annual_limit_tco2,
    trajectory_to_date_tco2, remaining_budget_tco2, required_tco2_per_day, meets} or None}],
    "monthly": [{month (YYYY-MM), indicators {id: {value, status, completeness}}}] (the last
    12 closed months up to the period, oldest first; metered indicators),
    "readiness": {ready, core_total, core_met, core_not_met [ids], stable_months,
    stable_months_required, stable_detail [{month, stable, failing}], reasons [text]}}``.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected location or market")
    cat = catalogue or load_catalogue()
    fr = frames(data)
    carriers = {r["carrier"] for r in data.get("meters", ())}
    metered, declared = cat.for_site(site["site_type"], carriers)
    baselines = _baselines(data, int(site["baseline_year"]))
    year = period.months[-1].year
    targets = {r["method"]: float(r["annual_emissions_kgco2"])
               for r in data.get("targets", ()) if int(r["year"]) == year}
    overrides = {r["indicator_id"]: (float(r["reference_value"]), str(r["source"]))
                 for r in data.get("indicator_targets", ())}
    decls = {r["indicator_id"]: Declaration(r["indicator_id"], str(r["value"]),
                                            str(r["evidence"]), str(r["declared_by"]),
                                            str(r["declared_at"]))
             for r in data.get("declared", ())}

    def evaluate(p: Period, inds: Sequence[Any], ytd: PeriodInputs | None
                 ) -> list[tuple[Any, IndicatorResult]]:
        inputs = build_inputs(p, data, fr, factors if p is period else ())
        out = []
        for ind in inds:
            ref = overrides.get(ind.id)
            out.append((ind, compute(ind, inputs, baselines=baselines,
                                     reference=ref[0] if ref else None,
                                     reference_source=(f"indicator_targets: {ref[1]}"
                                                       if ref else None),
                                     annual_target_kgco2=targets or None,
                                     primary_method=method, ytd=ytd)))
        return out

    ytd_inputs = build_inputs(ytd_of(period), data, fr)
    rows = [_row(ind, res, method) for ind, res in evaluate(period, metered, ytd_inputs)]
    rows += [_row(d, judge_declared(d, decls.get(d.id)), "-") for d in declared]

    # each closed month (the last 12 up to the period's end): every metered indicator, for
    # the plots; stable operation = closed months in a row, newest first
    local_now = now.astimezone(ZoneInfo(TZ))
    current = date(local_now.year, local_now.month, 1)
    last_closed = min(period.months[-1], _add_months(current, -1))
    core_ids = {i.id for i in metered if i.type == CORE}
    monthly: list[dict[str, Any]] = []
    stable, detail, broken = 0, [], False
    for k in range(12):
        month = _add_months(last_closed, -k)
        res = evaluate(month_period(month, now), metered, None)
        monthly.append({"month": f"{month:%Y-%m}", "indicators": {
            ind.id: {"value": r.value, "status": r.status, "completeness": r.completeness}
            for ind, r in res}})
        if broken:
            continue
        failing = [ind.id for ind, r in res if ind.id in core_ids and (
            r.status not in (MET, AT_RISK) or r.completeness is None or r.completeness < 0.9)]
        ok = bool(core_ids) and not failing
        detail.append({"month": f"{month:%Y-%m}", "stable": ok, "failing": failing})
        if ok:
            stable += 1
        else:
            broken = True
    monthly.reverse()
    core = [r for r in rows if r["type"] == CORE]
    core_met = [r for r in core if r["status"] in (MET, AT_RISK)]
    not_met = [r["id"] for r in core if r["status"] not in (MET, AT_RISK)]
    need = cat.stable_operation_months
    reasons = []
    if not_met:
        reasons.append(f"核心指标未达标或无数据 core indicators not met or without data: "
                       f"{', '.join(not_met)}")
    if stable < need:
        reasons.append(f"稳定运行 {stable} 个月 < {need} stable months (seed 003 line 111)")
    ready = bool(core) and not not_met and stable >= need
    return {
        "site": {k: site.get(k) for k in ("site_id", "name", "site_type", "province", "city",
                                          "baseline_year")},
        "period": {"kind": period.kind, "label": period.label,
                   "start": period.start.isoformat(), "end": period.end.isoformat(),
                   "months": [f"{m:%Y-%m}" for m in period.months], "days": period.days},
        "computed_at": now.astimezone(UTC).isoformat(),
        "method": method,
        "indicators": rows,
        "monthly": monthly,
        "readiness": {"ready": ready, "core_total": len(core), "core_met": len(core_met),
                      "core_not_met": not_met, "stable_months": stable,
                      "stable_months_required": need, "stable_detail": detail,
                      "reasons": reasons},
    }


def scorecard_for_site(reader_url: str, site_id: str, period: str = "ytd",
                       now: datetime | None = None, method: str = "location") -> dict[str, Any]:
    """The scorecard of ``site_id`` for ``period`` (``mtd``, ``ytd``, ``r12``, ``YYYY-MM``)
    as of ``now`` (default: the current time), read with the read-only role. Shape: see
    :func:`build_scorecard`. Raises ValueError for an unknown site or period."""
    from db.scorecard import factors_used, scorecard_inputs, site_info

    now = now or datetime.now(UTC)
    site = site_info(reader_url, site_id)
    if site is None:
        raise ValueError(f"unknown site {site_id!r}")
    p = period_for(period, now)
    first = min(p.months[0], date(p.months[-1].year, 1, 1), _add_months(p.months[-1], -12))
    data = scorecard_inputs(reader_url, site_id, month_start_utc(first),
                            month_start_utc(_add_months(p.months[-1], 1)))
    factors = factors_used(reader_url, site_id, p.start, p.end)
    return build_scorecard(site, p, data, now, method=method, factors=factors)


def store(writer_url: str, card: Mapping[str, Any]) -> None:
    """Store a scorecard as the local day's row (``scorecard_daily``, readiness)."""
    from db.scorecard import store_scorecard

    computed = datetime.fromisoformat(card["computed_at"])
    day = computed.astimezone(ZoneInfo(TZ)).date()
    store_scorecard(writer_url, card["site"]["site_id"], day, card["period"]["kind"],
                    card["indicators"], card["readiness"], computed)


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return f"{v[0]:g}-{v[1]:g}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def format_scorecard(card: Mapping[str, Any], verbose: bool = False) -> str:
    """The scorecard as text: Chinese names with English beside them, local times."""
    s, p, r = card["site"], card["period"], card["readiness"]
    tz = ZoneInfo(TZ)
    end_local = datetime.fromisoformat(p["end"]).astimezone(tz)
    lines = [
        f"== 评价指标记分卡 scorecard: {s['site_id']} {s['name']} ({s['site_type']}, "
        f"{s['province']}, 基准年 baseline {s['baseline_year']})",
        f"   期间 period: {p['label']}, 至 up to {end_local:%Y-%m-%d %H:%M} (Asia/Shanghai); "
        f"Scope 2: {card['method']}",
        f"   {'指标 indicator':<44} {'类型':<4} {'值 value':>12} {'参考 ref':>10} "
        f"{'单位 unit':<14} {'状态 status':<14} 完整度",
    ]
    for row in card["indicators"]:
        name = f"{row['name_zh']} {row['name_en']}"
        name = name if len(name) <= 44 else name[:43] + "…"
        comp = "-" if row["completeness"] is None else f"{row['completeness']:.0%}"
        mark = " [申报 declared]" if row["kind"] == "declared" else ""
        ref = _fmt(row["reference"])
        if row.get("direction") in ("<=", ">=", "reduction") and row["reference"] is not None:
            ref = ("≥" if row["direction"] != "<=" else "≤") + ref
        lines.append(f"   {name:<44} {row['type_zh']:<4} {_fmt(row['value']):>12} {ref:>10} "
                     f"{row['unit']:<14} {row['status_zh'] + ' ' + row['status']:<14} "
                     f"{comp}{mark}")
        vbm = row["value_by_method"]
        if vbm and len(vbm) == 2 and any(v is not None for v in vbm.values()):
            lines.append(f"      location {_fmt(vbm.get('location'))} / market "
                         f"{_fmt(vbm.get('market'))}")
        if row["kind"] == "metered" and (verbose or row["status"] != MET):
            for n in row["notes"]:
                lines.append(f"      - {n}")
        if verbose and row["projection"]:
            pj = row["projection"]
            lines.append(f"      年末预测 year-end projection {_fmt(pj['projected_year_tco2'])} "
                         f"tCO2; 年度上限 limit {_fmt(pj.get('annual_limit_tco2'))} tCO2; "
                         f"剩余额度 budget left {_fmt(pj.get('remaining_budget_tco2'))} tCO2")
    declared_open = sum(1 for x in card["indicators"]
                        if x["kind"] == "declared" and x["status"] == NO_DATA)
    verdict = "就绪 READY" if r["ready"] else "未就绪 NOT READY"
    lines.append(f"   验收准备 acceptance readiness: {verdict}"
                 f" - 核心指标 core {r['core_met']}/{r['core_total']} met; 稳定运行 stable "
                 f"months {r['stable_months']}/{r['stable_months_required']}; "
                 f"{declared_open} declared indicators not declared yet")
    for reason in r["reasons"]:
        lines.append(f"      - {reason}")
    return "\n".join(lines)


# --- demo ---------------------------------------------------------------------------------

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "simulators" / "sites" / "denominators"


def load_sample_entries(admin_url: str, directory: Path = SAMPLE_DIR) -> list[str]:
    """Import the sample sites' denominators and baselines (``denominators*.csv``,
    ``baselines*.csv``) unless already there; returns one line per file."""
    from carbon.indicators import parse_entries_csv
    from db.scorecard import ConflictError, import_entries, site_ids

    known = set(site_ids(admin_url))
    out = []
    for path in sorted(directory.glob("*.csv")):
        baseline = path.name.startswith("baselines")
        rows, errors = parse_entries_csv(path.read_text(encoding="utf-8"), known,
                                         baseline=baseline)
        if errors:
            out.append(f"{path.name}: not imported: {'; '.join(errors[:3])}")
            continue
        try:
            counts = import_entries(admin_url, rows, baseline=baseline, by="nzc demo",
                                    file=str(path))
            out.append(f"{path.name}: {counts}")
        except ConflictError as exc:
            out.append(f"{path.name}: kept the values already stored ({str(exc)[:120]})")
    return out


def demo_scorecards(settings: Any, period: str | None = None) -> int:
    """For ``nzc demo``: import the sample denominators and baselines, then print and store
    a scorecard for every site: month to date, or the previous month on a month's first
    local day (the demo replays the hours before now)."""
    from db.scorecard import site_ids

    for line in load_sample_entries(settings.database_admin_url):
        print(f"   sample denominators/baselines {line}")
    now = datetime.now(UTC)
    if period is None:
        local = now.astimezone(ZoneInfo(TZ))
        prev = _add_months(date(local.year, local.month, 1), -1)
        period = "mtd" if local.day > 1 else f"{prev:%Y-%m}"
    for site_id in site_ids(settings.database_reader_url):
        card = scorecard_for_site(settings.database_reader_url, site_id, period, now)
        print("\n" + format_scorecard(card))
        store(settings.database_url, card)
    return 0


def current_user() -> str:
    """Who runs the command (recorded with every entry)."""
    return os.environ.get("NZC_USER") or getpass.getuser()




def current_indicators(database_url: str, site_id: str,
                       now: datetime | None = None) -> dict[str, float | None]:
    """The metered indicators of ``site_id`` month to date as of ``now``: id -> value (in the
    indicator's unit; ``None`` for no data). Used by the alert rules of kind ``indicator``
    (:mod:`alerts.evaluate`)."""
    card = scorecard_for_site(database_url, site_id, "mtd", now)
    return {str(i["id"]): (float(i["value"]) if isinstance(i.get("value"), int | float)
                           else None)
            for i in card["indicators"] if i.get("kind") == "metered"}
