"""The reviewers' close (issue 12), pure: a site-month's figures with their data quality, the
checks before submission, the month's states, restatement differences, the annual disclosure
and the self-evaluation figures. The database side is :mod:`db.review`; the API and the CLI
glue them (:mod:`analytics.closing`).

Figures (``month_document``) carry a unit each and a ``quality`` block: completeness (lowest
share of fully measured intervals over the expected number among the boundary meters behind
the figure), estimated share (estimated quantity / quantity of those meters), quarantined
readings (dead letters of those meters received in the month), factor versions (emission
figures) and the sub-meter unmetered remainder (energy of carriers with sub-meters).

Checks (each stated in Chinese with English beside, with its numbers):

* month ended: a running month cannot be submitted;
* completeness: every boundary meter >= ``min_completeness`` (default 90 %, the national
  online-monitoring rule of thumb; ``NZC_CLOSE_MIN_COMPLETENESS``);
* daily vs monthly: per carrier, the sum of the local days (SQL group by day) equals the
  monthly figure (polars) within ``daily_tolerance`` (5 %, ``NZC_CLOSE_DAILY_TOLERANCE``);
* bills: each current utility bill of the month within ``bill_tolerance`` (2 %,
  ``NZC_CLOSE_BILL_TOLERANCE``) of the metered quantity; with ``NZC_CLOSE_REQUIRE_BILLS=1`` a
  month without a bill fails;
* no open data-quality alerts: passes with a note while the ``alerts`` table does not exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import polars as pl

from analytics.monthly import MonthlyClose
from carbon.units import CANONICAL_UNIT, Carrier
from db.review import MonthInputs, normalise

# Guangdong guide (seed 003): net emissions = boundary emissions - sinks - reductions
NET_PROVINCES = frozenset({"guangdong"})
#: denominators that are flows over the period (summed over a year); others are stocks
#: (population, floor area: averaged over the months)
FLOW_DENOMINATORS = ("gdp", "visitor", "output", "revenue", "production")
#: figures that add up over months
SUMMABLE = ("energy_consumed", "scope1", "scope2_location", "scope2_market", "total_location",
            "total_market", "sinks", "purchased_reductions", "net_location", "net_market")
STATES = ("draft", "submitted", "returned", "verified")
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({"draft", "returned"}), "submitted"),
    "return": (frozenset({"submitted"}), "returned"),
    "verify": (frozenset({"submitted"}), "verified"),
}


class TransitionError(ValueError):
    """An action not allowed in the month's current state."""


def next_state(action: str, state: str) -> str:
    """The state after ``action`` (submit, return, verify) from ``state``."""
    if action not in TRANSITIONS:
        raise TransitionError(f"unknown action {action!r}")
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise TransitionError(
            f"月份状态为 {state}，不能执行 {action} / cannot {action} a month that is {state} "
            f"(allowed from: {', '.join(sorted(allowed))})")
    return target


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


@dataclass(frozen=True)
class ReviewConfig:
    """Thresholds of the checks (fractions, not percent)."""

    min_completeness: float = 0.9
    daily_tolerance: float = 0.05
    bill_tolerance: float = 0.02
    require_bills: bool = False

    @classmethod
    def from_env(cls) -> ReviewConfig:
        """From ``NZC_CLOSE_MIN_COMPLETENESS``, ``NZC_CLOSE_DAILY_TOLERANCE``,
        ``NZC_CLOSE_BILL_TOLERANCE``, ``NZC_CLOSE_REQUIRE_BILLS`` (0/1)."""
        return cls(
            min_completeness=_env_float("NZC_CLOSE_MIN_COMPLETENESS", 0.9),
            daily_tolerance=_env_float("NZC_CLOSE_DAILY_TOLERANCE", 0.05),
            bill_tolerance=_env_float("NZC_CLOSE_BILL_TOLERANCE", 0.02),
            require_bills=os.environ.get("NZC_CLOSE_REQUIRE_BILLS", "0") == "1",
        )


def unit_of(carrier: str) -> str:
    """The canonical unit of a carrier (kWh, m3, GJ, kg)."""
    try:
        return CANONICAL_UNIT[Carrier(carrier)]
    except ValueError:
        return "?"


def _per_meter(inputs: MonthInputs) -> pl.DataFrame:
    """Per meter: measured / estimated rows, quantity, estimated quantity, completeness,
    quarantined readings."""
    meters = pl.DataFrame(
        [{"meter_id": m["meter_id"], "carrier": m["carrier"],
          "boundary": m["parent_id"] is None} for m in inputs.meters],
        schema={"meter_id": pl.String, "carrier": pl.String, "boundary": pl.Boolean},
        orient="row")
    energy = pl.DataFrame(
        [{"meter_id": r["meter_id"], "quantity": r["quantity"],
          "estimated_quantity": r["estimated_quantity"], "quality": r["quality"]}
         for r in inputs.energy],
        schema={"meter_id": pl.String, "quantity": pl.Float64,
                "estimated_quantity": pl.Float64, "quality": pl.String}, orient="row")
    quarantined = pl.DataFrame(
        [{"meter_id": r["meter_id"], "n": int(r["n"])} for r in inputs.quarantined],
        schema={"meter_id": pl.String, "n": pl.Int64}, orient="row")
    expected = max(inputs.expected_intervals_per_meter, 1)
    return (
        meters
        .join(energy.group_by("meter_id").agg(
            (pl.col("quality") == "measured").sum().alias("measured"),
            (pl.col("quality") == "estimated").sum().alias("estimated"),
            pl.col("quantity").sum().alias("quantity"),
            pl.col("estimated_quantity").sum().alias("estimated_quantity")),
            on="meter_id", how="left")
        .join(quarantined.group_by("meter_id").agg(pl.col("n").sum().alias("quarantined")),
              on="meter_id", how="left")
        .with_columns(pl.col("measured", "estimated", "quarantined").fill_null(0),
                      pl.col("quantity", "estimated_quantity").fill_null(0.0))
        .with_columns((pl.col("measured") / expected).alias("completeness"))
        .sort("meter_id")
    )


def _quality(per_meter: pl.DataFrame, meter_ids: list[str]) -> dict[str, Any]:
    sel = per_meter.filter(pl.col("meter_id").is_in(meter_ids))
    qty = float(sel["quantity"].sum()) if len(sel) else 0.0
    est = float(sel["estimated_quantity"].sum()) if len(sel) else 0.0
    return {
        "meters": len(sel),
        "completeness": float(sel["completeness"].min()) if len(sel) else 0.0,  # type: ignore[arg-type]
        "estimated_share": est / qty if qty > 0 else 0.0,
        "quarantined_readings": int(sel["quarantined"].sum()) if len(sel) else 0,
    }


def month_document(inputs: MonthInputs, close: MonthlyClose) -> dict[str, Any]:
    """The figures of a site-month as reviewers read and freeze them: every figure with its
    unit and data quality (see the module docstring). JSON-ready (normalised)."""
    pm = _per_meter(inputs)
    boundary = pm.filter(pl.col("boundary"))
    boundary_ids = boundary["meter_id"].to_list()
    by_scope: dict[str, set[str]] = {"scope1": set(), "scope2": set()}
    # factor versions per figure: Scope 1 (both methods use the fuel factors), Scope 2 per
    # method
    versions: dict[str, set[str]] = {"scope1": set(), "scope2_location": set(),
                                     "scope2_market": set()}
    for r in inputs.emissions:
        if r["meter_id"] in boundary_ids:
            by_scope[r["scope"]].add(r["meter_id"])
            key = "scope1" if r["scope"] == "scope1" else f"scope2_{r['method']}"
            versions[key].add(f"{r['factor_id']} {r['factor_version']}")
    remainders = {
        r["carrier"]: r for r in _sum_remainders(inputs.remainders)}
    figures: dict[str, dict[str, Any]] = {}
    for c in close.carriers:
        carrier = c["carrier"]
        ids = boundary.filter(pl.col("carrier") == carrier)["meter_id"].to_list()
        q = _quality(pm, ids)
        if carrier in remainders:
            rem = remainders[carrier]
            q["unmetered_remainder"] = rem["unmetered_quantity"]
            q["unmetered_remainder_share"] = (rem["unmetered_quantity"] / rem["parent_quantity"]
                                              if rem["parent_quantity"] else 0.0)
        figures[f"energy.{carrier}"] = {"value": c["quantity"], "unit": unit_of(carrier),
                                        "tce": c["energy_tce"], "quality": q}
    all_q = _quality(pm, boundary_ids)
    figures["energy_consumed"] = {"value": close.energy_tce, "unit": "tce", "quality": all_q}
    for scope, value in (("scope1", close.scope1_kgco2 / 1000),
                         ("scope2_location", close.scope2_location_kgco2 / 1000),
                         ("scope2_market", close.scope2_market_kgco2 / 1000)):
        q = _quality(pm, sorted(by_scope[scope.split("_")[0]]))
        q["factor_versions"] = sorted(versions[scope])
        figures[scope] = {"value": value, "unit": "tCO2", "quality": q}
    method_versions = {m: sorted(versions["scope1"] | versions[f"scope2_{m}"])
                       for m in ("location", "market")}
    for m, value in (("location", close.total_location_kgco2 / 1000),
                     ("market", close.total_market_kgco2 / 1000)):
        figures[f"total_{m}"] = {"value": value, "unit": "tCO2",
                                 "quality": {**all_q, "factor_versions": method_versions[m]}}
    src = {"source": "registry instruments (spread evenly over their months)"}
    figures["sinks"] = {"value": close.sinks_tco2, "unit": "tCO2", "quality": src}
    figures["purchased_reductions"] = {"value": close.reductions_tco2, "unit": "tCO2",
                                       "quality": src}
    if str(inputs.site.get("province", "")).lower() in NET_PROVINCES:
        for m, value in (("location", close.net_location_tco2),
                         ("market", close.net_market_tco2)):
            figures[f"net_{m}"] = {"value": value, "unit": "tCO2",
                                   "quality": {**all_q, "factor_versions": method_versions[m],
                                         "rule": "Guangdong guide: boundary - sinks - "
                                                 "purchased reductions"}}
    figures["renewable_share"] = {"value": close.renewable_share * 100, "unit": "%",
                                  "quality": all_q}
    if close.location_tco2_per_tce is not None:
        figures["carbon_intensity_of_energy"] = {
            "value": close.location_tco2_per_tce, "unit": "tCO2/tce", "quality": all_q}
    for d in inputs.denominators:
        if d["value"] > 0:
            figures[f"intensity.{d['kind']}"] = {
                "value": close.total_location_kgco2 / 1000 / d["value"],
                "unit": f"tCO2/{d['unit']}", "quality": {**all_q, "denominator": d["value"],
                                                        "denominator_unit": d["unit"]}}
    out: dict[str, Any] = normalise({
        "site_id": inputs.site["site_id"],
        "site_name": inputs.site.get("name"),
        "province": inputs.site.get("province"),
        "month": f"{inputs.month:%Y-%m}",
        "timezone": inputs.site["timezone"],
        "period_utc": {"start": inputs.start, "end": inputs.end, "until": inputs.until},
        "expected_intervals_per_meter": inputs.expected_intervals_per_meter,
        "figures": figures,
        "meters": pm.to_dicts(),
        "submeters": [dict(r) for r in inputs.remainders],
        "factors": close.factors,
        "denominators": [dict(d) for d in inputs.denominators],
        "market_instruments": {"green_power_kwh": close.green_power_kwh,
                               "certificate_kwh": close.certificate_kwh,
                               "unused_covered_kwh": close.unused_covered_kwh,
                               "onsite_generation_kwh": close.onsite_generation_kwh,
                               "export_kwh": close.export_kwh},
        "corrections": close.corrections,
    })
    return out


def _sum_remainders(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        acc = out.setdefault(r["carrier"], {"carrier": r["carrier"], "parent_quantity": 0.0,
                                            "unmetered_quantity": 0.0})
        acc["parent_quantity"] += float(r["parent_quantity"] or 0.0)
        acc["unmetered_quantity"] += float(r["unmetered_quantity"] or 0.0)
    return list(out.values())


# --- checks ---------------------------------------------------------------------------------


def _check(name: str, passed: bool, zh: str, en: str, **numbers: Any) -> dict[str, Any]:
    return {"check": name, "passed": passed, "message": f"{zh} / {en}",
            "numbers": normalise(numbers)}


def _bill_factor(bill_unit: str, canonical: str) -> float | None:
    """Multiply a bill quantity by this to get the canonical unit (None: not comparable)."""
    if bill_unit == canonical:
        return 1.0
    table = {("MWh", "kWh"): 1000.0, ("Wh", "kWh"): 0.001, ("10^4 m3", "m3"): 10_000.0,
             ("MJ", "GJ"): 0.001, ("t", "kg"): 1000.0}
    return table.get((bill_unit, canonical))


def run_checks(inputs: MonthInputs, doc: dict[str, Any], bills: list[dict[str, Any]],
               open_alerts: int | None, config: ReviewConfig) -> list[dict[str, Any]]:
    """The checks a month must pass before it can be submitted, each in words with its
    numbers (see the module docstring)."""
    checks: list[dict[str, Any]] = []
    ended = inputs.until >= inputs.end
    checks.append(_check(
        "month_ended", ended, "月份已结束" if ended else "月份尚未结束",
        f"the local month ended at {inputs.end:%Y-%m-%d %H:%M} UTC" if ended else
        f"the local month runs until {inputs.end:%Y-%m-%d %H:%M} UTC; only data up to "
        f"{inputs.until:%Y-%m-%d %H:%M} UTC so far", end=inputs.end, until=inputs.until))
    boundary = [m for m in doc["meters"] if m["boundary"]]
    low = [m for m in boundary if m["completeness"] < config.min_completeness]
    need = f"{config.min_completeness:.0%}"
    if not boundary:
        checks.append(_check("completeness", False, "没有边界计量表",
                             "no boundary meter in the registry", meters=0))
    elif low:
        worst = ", ".join(f"{m['meter_id']} {m['completeness']:.1%} ({m['measured']} of "
                          f"{inputs.expected_intervals_per_meter} intervals)" for m in low)
        checks.append(_check(
            "completeness", False, f"{len(low)} 个边界计量表数据完整率低于 {need}",
            f"{len(low)} of {len(boundary)} boundary meters below {need} complete: {worst}",
            required=config.min_completeness,
            failing={m["meter_id"]: m["completeness"] for m in low}))
    else:
        lowest = min(boundary, key=lambda m: m["completeness"])
        checks.append(_check(
            "completeness", True, f"全部 {len(boundary)} 个边界计量表完整率不低于 {need}",
            f"all {len(boundary)} boundary meters at least {need} complete (lowest "
            f"{lowest['meter_id']} {lowest['completeness']:.1%} of "
            f"{inputs.expected_intervals_per_meter} intervals)",
            required=config.min_completeness, lowest=lowest["completeness"]))

    daily = pl.DataFrame(
        [{"carrier": r["carrier"], "quantity": float(r["quantity"])} for r in inputs.daily],
        schema={"carrier": pl.String, "quantity": pl.Float64}, orient="row")
    day_sums = {r["carrier"]: r["quantity"] for r in
                daily.group_by("carrier").agg(pl.col("quantity").sum()).iter_rows(named=True)}
    diffs = {}
    bad = []
    for name, fig in doc["figures"].items():
        if not name.startswith("energy."):
            continue
        carrier = name.removeprefix("energy.")
        monthly, summed = float(fig["value"]), float(day_sums.get(carrier, 0.0))
        rel = abs(summed - monthly) / monthly if monthly > 0 else (0.0 if summed == 0 else 1.0)
        diffs[carrier] = {"monthly": monthly, "daily_sum": summed, "unit": fig["unit"],
                          "difference": rel}
        if rel > config.daily_tolerance:
            bad.append(f"{carrier} days {summed:.2f} vs month {monthly:.2f} {fig['unit']} "
                       f"({rel:.1%})")
    tol = f"{config.daily_tolerance:.0%}"
    checks.append(_check(
        "daily_vs_monthly", not bad,
        f"日合计与月合计相差{'超过' if bad else '不超过'} {tol}",
        ("daily sums differ from the monthly figure by more than " + tol + ": "
         + "; ".join(bad)) if bad else
        f"daily sums agree with the monthly figures within {tol} for {len(diffs)} carriers",
        tolerance=config.daily_tolerance, carriers=diffs))

    current = [b for b in bills if b.get("current", True)]
    results, bad = [], []
    for b in current:
        fig = doc["figures"].get(f"energy.{b['carrier']}")
        metered = float(fig["value"]) if fig else 0.0
        canonical = fig["unit"] if fig else unit_of(b["carrier"])
        factor = _bill_factor(b["unit"], canonical)
        if factor is None:
            bad.append(f"bill {b['bill_id']} {b['carrier']} in {b['unit']}: not comparable "
                       f"with {canonical}")
            continue
        billed = float(b["quantity"]) * factor
        rel = abs(metered - billed) / billed if billed > 0 else (0.0 if metered == 0 else 1.0)
        results.append({"bill_id": b["bill_id"], "carrier": b["carrier"], "billed": billed,
                        "metered": metered, "unit": canonical, "difference": rel})
        if rel > config.bill_tolerance:
            bad.append(f"{b['carrier']} billed {billed:.2f} vs metered {metered:.2f} "
                       f"{canonical} ({rel:.1%})")
    btol = f"{config.bill_tolerance:.0%}"
    if not current:
        checks.append(_check(
            "bills", not config.require_bills, "本月未录入账单",
            "no utility bill entered for this month"
            + (" (required: NZC_CLOSE_REQUIRE_BILLS=1)" if config.require_bills
               else " (not required; set NZC_CLOSE_REQUIRE_BILLS=1 to require one)"),
            bills=0))
    else:
        checks.append(_check(
            "bills", not bad,
            f"账单与计量{'不' if bad else ''}一致（容差 {btol}）",
            ("bills do not reconcile with the meters: " + "; ".join(bad)) if bad else
            f"{len(results)} bills reconcile with the metered totals within {btol}",
            tolerance=config.bill_tolerance, bills=results))

    if open_alerts is None:
        checks.append(_check("open_alerts", True, "告警表尚未建立，未检查",
                             "no alerts table yet (alerts issue): not checked", open=None))
    else:
        checks.append(_check(
            "open_alerts", open_alerts == 0,
            f"未关闭的数据质量告警 {open_alerts} 条",
            f"{open_alerts} open data-quality alerts" + (" must be resolved first"
                                                       if open_alerts else ""),
            open=open_alerts))
    return checks


# --- snapshots and restatements ---------------------------------------------------------


def snapshot_document(doc: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    """What is frozen for a month: its figures document and the checks it passed."""
    return {"close": doc, "checks": checks, "schema": "nzc.close.v1"}


def compare_figures(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures whose value differs between two month documents: name, unit, old, new,
    change (new - old)."""
    out = []
    a, b = old.get("figures", {}), new.get("figures", {})
    for name in sorted(set(a) | set(b)):
        va = a.get(name, {}).get("value")
        vb = b.get(name, {}).get("value")
        if va != vb:
            out.append({"figure": name, "unit": (b.get(name) or a.get(name))["unit"],
                        "old": va, "new": vb,
                        "change": (vb - va) if va is not None and vb is not None else None})
    return out


def restatement_reason(old: dict[str, Any], new: dict[str, Any],
                       changed_rows: dict[str, Any]) -> str:
    """Why a frozen month's live figures moved, in words (Chinese with English beside)."""
    parts = []
    if changed_rows.get("energy_rows"):
        parts.append(f"{changed_rows['energy_rows']} energy intervals written after "
                     "verification (late or corrected readings)")
    if changed_rows.get("emission_rows"):
        parts.append(f"{changed_rows['emission_rows']} emission intervals written after "
                     "verification (late data or a recompute)")
    if changed_rows.get("recomputes"):
        parts.append("recomputed with other factors (recompute_audit "
                     + ", ".join(str(x) for x in changed_rows["recomputes"]) + ")")
    fa = {f"{f['factor_id']} {f['factor_version']}" for f in old.get("factors", [])}
    fb = {f"{f['factor_id']} {f['factor_version']}" for f in new.get("factors", [])}
    if fa != fb:
        parts.append(f"factors changed: {', '.join(sorted(fa - fb)) or '-'} -> "
                     f"{', '.join(sorted(fb - fa)) or '-'}")
    if old.get("denominators") != new.get("denominators"):
        parts.append("denominators changed")
    if not parts:
        parts.append("registry data changed (instruments or meter tree)")
    return "冻结月份数据变化 / frozen month's data changed: " + "; ".join(parts)


# --- annual disclosure and self-evaluation -----------------------------------------------


def annual_disclosure(site: dict[str, Any], year: int, months: list[dict[str, Any]]
                      ) -> dict[str, Any]:
    """The yearly carbon disclosure of a site from its verified months only.

    ``months``: per verified month ``month`` (date), ``version``, ``sha256``, ``doc`` (the
    snapshot document). Summable figures are summed; the energy per carrier too; intensities
    are the annual location-based total over the denominator (flows summed, stocks averaged).
    """
    totals: dict[str, dict[str, Any]] = {}
    denominators: dict[str, dict[str, Any]] = {}
    for m in months:
        figs = m["doc"]["close"]["figures"]
        for name, fig in figs.items():
            if name in SUMMABLE or name.startswith("energy."):
                t = totals.setdefault(name, {"value": 0.0, "unit": fig["unit"], "months": 0})
                t["value"] += float(fig["value"])
                t["months"] += 1
                if "tce" in fig:
                    t["tce"] = t.get("tce", 0.0) + float(fig["tce"])
        for d in m["doc"]["close"].get("denominators", []):
            acc = denominators.setdefault(d["kind"], {"values": [], "unit": d["unit"]})
            acc["values"].append(float(d["value"]))
    intensities = {}
    total_loc = totals.get("total_location", {}).get("value")
    for kind, d in denominators.items():
        flow = any(k in kind for k in FLOW_DENOMINATORS)
        value = sum(d["values"]) if flow else sum(d["values"]) / len(d["values"])
        if value > 0 and total_loc is not None:
            intensities[f"intensity.{kind}"] = {
                "value": total_loc / value, "unit": f"tCO2/{d['unit']}",
                "denominator": value, "denominator_rule": "sum" if flow else "mean"}
    verified = sorted(f"{m['month']:%Y-%m}" for m in months)
    missing = [f"{year}-{k:02d}" for k in range(1, 13) if f"{year}-{k:02d}" not in verified]
    out: dict[str, Any] = normalise({
        "site_id": site["site_id"], "site_name": site.get("name"), "year": year,
        "complete": not missing, "verified_months": verified, "missing_months": missing,
        "note": ("仅含已核证月份 / verified months only"
                 + ("" if not missing else f"; {len(missing)} months not verified")),
        "totals": totals, "intensities": intensities,
        "sources": [{"month": f"{m['month']:%Y-%m}", "version": m["version"],
                     "sha256": m["sha256"]} for m in months],
    })
    return out


def self_evaluation(site: dict[str, Any], baseline: dict[str, Any], current: dict[str, Any]
                    ) -> dict[str, Any]:
    """Baseline year vs the current year, per indicator, from two annual disclosures
    (verified months only). Change = (current - baseline) / baseline."""
    rows = []
    names = sorted((set(baseline["totals"]) | set(baseline["intensities"]))
                   & (set(current["totals"]) | set(current["intensities"])))
    for name in names:
        b = baseline["totals"].get(name) or baseline["intensities"][name]
        c = current["totals"].get(name) or current["intensities"][name]
        change = ((c["value"] - b["value"]) / b["value"]) if b["value"] else None
        rows.append({"indicator": name, "unit": c["unit"], "baseline": b["value"],
                     "current": c["value"], "change": change})
    out: dict[str, Any] = normalise({
        "site_id": site["site_id"], "baseline_year": baseline["year"],
        "current_year": current["year"],
        "baseline_complete": baseline["complete"], "current_complete": current["complete"],
        "note": "基准年与当前年均仅用已核证月份 / both years from verified months only",
        "indicators": rows,
    })
    return out


# --- text -----------------------------------------------------------------------------------

_LABELS = {
    "energy_consumed": "综合能耗 energy consumed",
    "scope1": "范围一 Scope 1",
    "scope2_location": "范围二(基于位置) Scope 2 location-based",
    "scope2_market": "范围二(基于市场) Scope 2 market-based",
    "total_location": "合计(位置) total location-based",
    "total_market": "合计(市场) total market-based",
    "sinks": "碳汇 carbon sinks",
    "purchased_reductions": "购买减排量 purchased reductions",
    "net_location": "净排放(位置) net location-based",
    "net_market": "净排放(市场) net market-based",
    "renewable_share": "可再生能源占比 renewable share",
    "carbon_intensity_of_energy": "能源碳强度 carbon intensity of energy",
}


def format_month(doc: dict[str, Any], checks: list[dict[str, Any]] | None = None,
                 state: dict[str, Any] | None = None) -> str:
    """A reviewer's page of a month: every figure with its unit and data quality."""
    lines = [f"月度结算 Monthly close: {doc['site_id']} {doc['month']} "
             f"(local month, {doc['timezone']})"]
    if state:
        lines.append(f"  状态 state: {state.get('state')} (version {state.get('version', 0)})")
    for name, fig in doc["figures"].items():
        label = _LABELS.get(name, name)
        q = fig.get("quality", {})
        extra = f" = {fig['tce']:.3f} tce" if "tce" in fig else ""
        qual = []
        if "completeness" in q:
            qual.append(f"completeness {q['completeness']:.1%}")
        if "estimated_share" in q:
            qual.append(f"estimated {q['estimated_share']:.1%}")
        if q.get("quarantined_readings"):
            qual.append(f"quarantined {q['quarantined_readings']} readings")
        if "unmetered_remainder" in q:
            qual.append(f"unmetered {q['unmetered_remainder']:.2f} {fig['unit']} "
                        f"({q['unmetered_remainder_share']:.1%})")
        if q.get("factor_versions"):
            qual.append("factors " + ", ".join(q["factor_versions"]))
        lines.append(f"  {label}: {fig['value']:.3f} {fig['unit']}{extra}"
                     + (f"  [{'; '.join(qual)}]" if qual else ""))
    for c in checks or []:
        lines.append(f"  检查 check {c['check']}: {'通过 PASS' if c['passed'] else '未通过 FAIL'}"
                     f" - {c['message']}")
    return "\n".join(lines)
