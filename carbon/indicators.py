"""The pilot indicators, defined once as data (``carbon/indicators.yaml``), and their
computation from one period's inputs. Pure: no database, no clock.

Where the definitions come from (seed line numbers are in the YAML): seed 002 Annex 1 tables
1-5 (Hechi: region, park, community, campus, commercial site), seed 000 (Chengdu: what each
pilot type must achieve), seed 003 (Guangdong: net emissions, 3 months of stable operation),
seed 004 (Chengdu: data-centre PUE <= 1.25) and the national zero-carbon park indicator
tCO2/tce (reference not in the seeds: configured per site).

Units: emissions in tCO2 inside this module (the pipeline stores kgCO2), energy in tce,
electricity in kWh, water in m3, heat in GJ; shares in % (0-100).

Rules every computation follows:

* A missing or zero denominator, baseline or reference gives status ``no data`` with the
  reason, never a division by zero and never a zero.
* Stock denominators (population, floor area) are averaged over the period's months, the
  latest earlier entry carried forward (and said so); flow denominators (value added, output,
  visitors, product output, waste heat resource, reused water) must be entered for every month
  of the period and are summed.
* Emission totals of a period shorter or longer than a year are annualised by days
  (``days_in_year / days``) before they are compared with a baseline year's total; this
  ignores seasonality, which the month-by-month scorecards show.
* Emission-based indicators are computed with both Scope 2 methods (location- and
  market-based); the status follows the scorecard's primary method (location by default: the
  official MEE grid factors).
* Declared indicators are never mixed with metered ones: they carry ``kind = "declared"`` and
  their own evidence, and a metered indicator never takes a declared value.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from carbon.emissions import market_based_scope2
from carbon.tce import ELECTRICITY

DATA_FILE = Path(__file__).with_name("indicators.yaml")

CORE, GENERAL, GUIDING = "core", "general", "guiding"
TYPE_ZH = {CORE: "核心", GENERAL: "一般", GUIDING: "引导"}

MET, AT_RISK, NOT_MET, NO_DATA = "met", "at risk", "not met", "no data"
STATUS_ZH = {MET: "达标", AT_RISK: "有风险", NOT_MET: "未达标", NO_DATA: "无数据"}

#: A value this close to its reference (relative to the reference; percentage points for
#: shares and reductions) is "at risk" even when it meets it.
MARGIN_RELATIVE = 0.05
MARGIN_POINTS = 2.0
#: Completeness below this puts a value that meets its reference "at risk" (DOMAIN.md section
#: 4: a month is complete when every meter has 90 % of its intervals).
COMPLETE_SHARE = 0.9

#: Denominators entered by people. Stock: a level, averaged over months; flow: an amount per
#: month, summed. Units as in ``carbon.registry.DENOMINATOR_KINDS`` plus two quantities the
#: park indicators need that no meter measures.
DENOMINATOR_UNITS: dict[str, str] = {
    "population": "person",
    "floor_area": "m2",
    "output_value": "CNY 10^4",
    "value_added": "CNY 10^4",
    "visitors": "person",
    "product_output": "t",
    "waste_heat_resource": "GJ",
    "water_reused": "m3",
}
STOCK_KINDS = frozenset({"population", "floor_area"})

#: Baseline-year totals: emissions per method [tCO2] (or one figure for both), energy [tce],
#: water [m3] and the denominators of the baseline year (annual mean for stocks, annual sum
#: for flows).
BASELINE_UNITS: dict[str, str] = {
    "emissions_location_tco2": "tCO2",
    "emissions_market_tco2": "tCO2",
    "emissions_tco2": "tCO2",
    "energy_tce": "tce",
    **{k: v for k, v in DENOMINATOR_UNITS.items()},
}

EMISSION_CARRIERS = ("grid_import", "natural_gas", "heat", "diesel", "gasoline", "lpg")
FUEL_CARRIERS = ("natural_gas", "heat", "diesel", "gasoline", "lpg")
CLEAN_FUELS = ("natural_gas", "heat")  # heat: purchased heat counted clean (check)
METHODS = ("location", "market")


class IndicatorError(ValueError):
    """An invalid indicator definition, declared value or denominator row."""


# --- definitions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a reference value is written: seed file prefix, table, line, pilot types."""

    seed: str | None
    table: int | None
    line: int | None
    types: tuple[str, ...]


@dataclass(frozen=True)
class Indicator:
    """A metered (computed) indicator."""

    id: str
    name_zh: str
    name_en: str
    category: str
    type: str
    pilot_types: tuple[str, ...]
    scheme: str
    formula: str
    formula_text: str
    unit: str
    direction: str
    reference: float | None
    reference_text: str
    denominators: tuple[str, ...] = ()
    requires_carriers: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    notes: str | None = None


@dataclass(frozen=True)
class DeclaredIndicator:
    """An indicator people declare with evidence (``value_type`` number or yes_no)."""

    id: str
    name_zh: str
    name_en: str
    type: str
    pilot_types: tuple[str, ...]
    value_type: str
    unit: str
    direction: str | None
    reference: float | tuple[float, float] | None
    reference_text: str
    seed: str | None
    table: int | None
    line: int | None


@dataclass(frozen=True)
class Catalogue:
    """Every indicator, as loaded from the data file."""

    metered: tuple[Indicator, ...]
    declared: tuple[DeclaredIndicator, ...]
    stable_operation_months: int
    schemes: Mapping[str, Mapping[str, Any]]

    def by_id(self, indicator_id: str) -> Indicator | DeclaredIndicator:
        """The indicator with this id; :class:`IndicatorError` naming the known ids."""
        for m in self.metered:
            if m.id == indicator_id:
                return m
        for d in self.declared:
            if d.id == indicator_id:
                return d
        raise IndicatorError(f"unknown indicator {indicator_id!r}")

    def for_site(self, site_type: str, carriers: set[str]) -> tuple[list[Indicator],
                                                                    list[DeclaredIndicator]]:
        """The indicators that apply to a site of ``site_type`` with meters of ``carriers``."""
        metered = [i for i in self.metered if site_type in i.pilot_types
                   and all(c in carriers for c in i.requires_carriers)]
        declared = [d for d in self.declared if site_type in d.pilot_types]
        return metered, declared


FORMULAS = frozenset({"total_reduction", "per_capita", "intensity_reduction", "net_emissions",
                      "emissions_per_energy", "renewable_share", "clean_energy_rate",
                      "waste_heat_recovery", "energy_per_area", "pue", "water_per_capita",
                      "water_reuse"})
DIRECTIONS = frozenset({"<=", ">=", "reduction", "between"})


def parse_catalogue(doc: Mapping[str, Any], source: str = "<indicators>") -> Catalogue:
    """Validate the parsed data file; errors name the entry and field."""
    metered: list[Indicator] = []
    seen: set[str] = set()
    for raw in doc.get("metered") or []:
        where = f"{source}: metered {raw.get('id')!r}"
        ind = Indicator(
            id=str(raw["id"]), name_zh=str(raw["name_zh"]), name_en=str(raw["name_en"]),
            category=str(raw["category"]), type=str(raw["type"]),
            pilot_types=tuple(raw["pilot_types"]), scheme=str(raw["scheme"]),
            formula=str(raw["formula"]), formula_text=str(raw["formula_text"]),
            unit=str(raw["unit"]), direction=str(raw["direction"]),
            reference=None if raw.get("reference") is None else float(raw["reference"]),
            reference_text=str(raw.get("reference_text", "")),
            denominators=tuple(raw.get("denominators") or ()),
            requires_carriers=tuple(raw.get("requires_carriers") or ()),
            sources=tuple(Source(None if s.get("seed") is None else str(s["seed"]),
                                 s.get("table"), s.get("line"), tuple(s.get("types") or ()))
                          for s in raw.get("sources") or ()),
            notes=raw.get("notes"),
        )
        if ind.formula not in FORMULAS:
            raise IndicatorError(f"{where}: formula {ind.formula!r}; known: {sorted(FORMULAS)}")
        if ind.direction not in DIRECTIONS or ind.type not in TYPE_ZH:
            raise IndicatorError(f"{where}: direction {ind.direction!r} / type {ind.type!r}")
        unknown = [d for d in ind.denominators if d not in DENOMINATOR_UNITS]
        if unknown:
            raise IndicatorError(f"{where}: unknown denominator {unknown[0]!r}")
        if ind.id in seen:
            raise IndicatorError(f"{where}: duplicate id")
        seen.add(ind.id)
        metered.append(ind)
    declared: list[DeclaredIndicator] = []
    for raw in doc.get("declared") or []:
        where = f"{source}: declared {raw.get('id')!r}"
        ref = raw.get("reference")
        reference: float | tuple[float, float] | None
        if isinstance(ref, list):
            reference = (float(ref[0]), float(ref[1]))
        else:
            reference = None if ref is None else float(ref)
        d = DeclaredIndicator(
            id=str(raw["id"]), name_zh=str(raw["name_zh"]), name_en=str(raw["name_en"]),
            type=str(raw["type"]), pilot_types=tuple(raw["pilot_types"]),
            value_type=str(raw["value_type"]), unit=str(raw.get("unit", "-")),
            direction=raw.get("direction"), reference=reference,
            reference_text=str(raw.get("reference_text", ref if ref is not None else "")),
            seed=None if raw.get("seed") is None else str(raw["seed"]),
            table=raw.get("table"), line=raw.get("line"))
        if d.value_type not in ("number", "yes_no") or d.type not in TYPE_ZH:
            raise IndicatorError(f"{where}: value_type {d.value_type!r} / type {d.type!r}")
        if d.value_type == "number" and (d.direction not in DIRECTIONS or reference is None):
            raise IndicatorError(f"{where}: a number needs a direction and a reference")
        if d.id in seen:
            raise IndicatorError(f"{where}: duplicate id")
        seen.add(d.id)
        declared.append(d)
    return Catalogue(tuple(metered), tuple(declared), int(doc["stable_operation_months"]),
                     dict(doc.get("schemes") or {}))


@lru_cache(maxsize=4)
def load_catalogue(path: Path = DATA_FILE) -> Catalogue:
    """The indicator catalogue from the data file (package data ``carbon/indicators.yaml``)."""
    return parse_catalogue(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


# --- inputs of one period -----------------------------------------------------------------


@dataclass(frozen=True)
class CarrierTotal:
    """One carrier's boundary-meter totals over a period (canonical unit; tce; seconds)."""

    quantity: float
    estimated_quantity: float = 0.0
    energy_tce: float = 0.0
    covered_s: float = 0.0
    meters: int = 1

    @property
    def estimated_share(self) -> float:
        """Estimated part of the quantity [0-1] (0 when there is no quantity)."""
        return self.estimated_quantity / self.quantity if self.quantity > 0 else 0.0


@dataclass(frozen=True)
class DenominatorEntry:
    """One month's people-entered value with where it came from."""

    month: date
    value: float
    source: str | None = None


@dataclass(frozen=True)
class BaselineValue:
    """A baseline-year total: entered with its source, or computed from stored data."""

    year: int
    kind: str
    value: float
    source: str
    method: str = "entered"


@dataclass(frozen=True)
class PeriodInputs:
    """Everything one period's indicators are computed from.

    ``months``: the local months of the period (first days); ``days``: the period's elapsed
    days (up to now for a running period); ``days_in_year``: 365 or 366.
    ``carriers``: boundary-meter totals per carrier. Emissions [kgCO2] of boundary meters:
    ``scope1_kgco2``, ``scope2_location_kgco2``, ``scope2_market_kgco2`` (month by month with
    green power and retired certificates, :func:`market_scope2_month`). ``green_used_kwh``,
    ``certificate_used_kwh``: instrument kWh that covered grid kWh. ``sinks_tco2``,
    ``reductions_tco2``: carbon sinks and purchased voluntary reductions allocated to the
    period. ``denominators``: kind -> entries for the period's months (stocks: the latest
    earlier entry is included for carry-forward). ``it_load_kwh``/``data_centre_kwh``: IT load
    and the data centres' total (the parent meters of the IT meters).
    """

    label: str
    months: tuple[date, ...]
    days: float
    days_in_year: float
    carriers: Mapping[str, CarrierTotal]
    scope1_kgco2: float = 0.0
    scope2_location_kgco2: float = 0.0
    scope2_market_kgco2: float = 0.0
    green_used_kwh: float = 0.0
    certificate_used_kwh: float = 0.0
    sinks_tco2: float = 0.0
    reductions_tco2: float = 0.0
    denominators: Mapping[str, Sequence[DenominatorEntry]] = field(default_factory=dict)
    it_load_kwh: float | None = None
    data_centre_kwh: float | None = None
    it_completeness: float | None = None
    factors: Sequence[Mapping[str, Any]] = ()
    period_start: str | None = None
    period_end: str | None = None
    month_shares: Mapping[date, float] = field(default_factory=dict)

    def qty(self, carrier: str) -> float:
        """Quantity of a carrier (0 when no boundary meter reported it)."""
        c = self.carriers.get(carrier)
        return c.quantity if c else 0.0

    def emissions_tco2(self, method: str) -> float:
        """Scope 1 + Scope 2 of ``method`` [tCO2]."""
        s2 = self.scope2_location_kgco2 if method == "location" else self.scope2_market_kgco2
        return (self.scope1_kgco2 + s2) / 1000.0

    @property
    def has_energy_data(self) -> bool:
        """Whether any boundary meter reported anything in the period."""
        return any(c.quantity > 0 or c.covered_s > 0 for c in self.carriers.values())

    @property
    def self_consumed_pv_kwh(self) -> float:
        """On-site generation minus export, never negative (DOMAIN.md section 4)."""
        return max(0.0, self.qty("onsite_renewable") - self.qty("grid_export"))

    @property
    def electricity_kwh(self) -> float:
        """Electricity consumed: grid import + on-site generation used on site [kWh]."""
        return self.qty("grid_import") + self.self_consumed_pv_kwh

    @property
    def energy_tce(self) -> float:
        """Energy consumed [tce]: consumed electricity x 0.1229 kgce/kWh (GB/T 2589-2020,
        equivalent value) + the fuels' and purchased heat's tce as stored with each interval;
        export, water and recovered waste heat are not added."""
        el = self.electricity_kwh * ELECTRICITY.value / 1000.0
        return el + sum(self.carriers[c].energy_tce for c in FUEL_CARRIERS if c in self.carriers)


def market_scope2_month(grid_kwh: float, grid_market_rows_kgco2: float,
                        other_market_kgco2: float, green_kwh: float,
                        certificate_kwh: float) -> tuple[float, float, float]:
    """One month's market-based Scope 2 [kgCO2] and the green-power and certificate kWh that
    covered grid kWh (DOMAIN.md section 4: covered kWh emit 0, the rest at the national factor
    excluding market-traded non-fossil power, i.e. the kWh-weighted factor of the market
    rows; coverage above the month's grid kWh is unused, not carried over)."""
    if grid_kwh <= 0:
        return other_market_kgco2, 0.0, 0.0
    green = min(green_kwh, grid_kwh)
    cert = min(certificate_kwh, grid_kwh - green)
    factor = grid_market_rows_kgco2 / grid_kwh
    return other_market_kgco2 + market_based_scope2(grid_kwh, green, cert, factor), green, cert


# --- results -------------------------------------------------------------------------------


@dataclass
class IndicatorResult:
    """One indicator of a scorecard. ``value`` is in the indicator's unit for the primary
    method; ``value_by_method`` holds both Scope 2 methods where emissions enter."""

    indicator_id: str
    kind: str  # metered | declared
    value: float | None
    status: str
    reference: float | tuple[float, float] | None
    reference_source: str
    notes: list[str] = field(default_factory=list)
    value_by_method: dict[str, float | None] = field(default_factory=dict)
    completeness: float | None = None
    estimated_share: float | None = None
    trace: dict[str, Any] = field(default_factory=dict)
    projection: dict[str, Any] | None = None


def judge(value: float | None, reference: float | None, direction: str, unit: str = "",
          completeness: float | None = None, projection_meets: bool | None = None,
          notes: list[str] | None = None) -> str:
    """Status of a value against its reference.

    ``met`` when it satisfies the reference; ``at risk`` when it does but lies within 5 % of
    the reference (2 percentage points for % values), rests on data less than 90 % complete,
    or the year-end projection misses; ``not met`` otherwise; ``no data`` without a value or a
    reference. Reasons are appended to ``notes``.
    """
    notes = notes if notes is not None else []
    if value is None or reference is None or not math.isfinite(value):
        return NO_DATA
    ok = value <= reference if direction == "<=" else value >= reference
    incomplete = completeness is not None and completeness < COMPLETE_SHARE
    if incomplete:
        notes.append(f"数据完整度 {completeness:.1%} < 90 % data completeness")
    if not ok:
        return NOT_MET
    margin = (MARGIN_POINTS if unit == "%" else abs(reference) * MARGIN_RELATIVE)
    risky = incomplete
    if margin > 0 and abs(value - reference) < margin:
        notes.append(f"接近参考值 close to the reference ({value:.4g} vs {reference:.4g})")
        risky = True
    if projection_meets is False:
        notes.append("按当前趋势年末未达标 the year-end projection misses the reference")
        risky = True
    return AT_RISK if risky else MET


def denominator_value(inputs: PeriodInputs, kind: str) -> tuple[float | None, dict[str, Any]]:
    """The period's denominator: mean over the months for a stock (latest earlier entry
    carried forward), sum for a flow; ``None`` with the reason when a month lacks it or it
    is zero. A flow entered for a month that is still running counts in proportion to the
    elapsed share of the month (``month_shares``). Returns the value and its trace."""
    entries = sorted(inputs.denominators.get(kind, ()), key=lambda e: e.month)
    used: list[dict[str, Any]] = []
    missing: list[str] = []
    values: list[float] = []
    trace: dict[str, Any]
    for m in inputs.months:
        share = 1.0 if kind in STOCK_KINDS else inputs.month_shares.get(m, 1.0)
        if kind in STOCK_KINDS:
            earlier = [e for e in entries if e.month <= m]
            entry = earlier[-1] if earlier else None
        else:
            entry = next((e for e in entries if e.month == m), None)
        if entry is None:
            missing.append(f"{m:%Y-%m}")
            continue
        values.append(entry.value * share)
        used.append({"kind": kind, "month": f"{m:%Y-%m}", "value": entry.value,
                     "unit": DENOMINATOR_UNITS[kind], "source": entry.source,
                     "carried_from": None if entry.month == m else f"{entry.month:%Y-%m}",
                     "share_of_month": share})
    trace = {"kind": kind, "unit": DENOMINATOR_UNITS[kind], "entries": used,
             "missing_months": missing, "aggregate": "mean" if kind in STOCK_KINDS else "sum"}
    if missing or not values:
        trace["reason"] = f"{kind} missing for {', '.join(missing) or 'the period'}"
        return None, trace
    value = sum(values) / len(values) if kind in STOCK_KINDS else sum(values)
    if value <= 0:
        trace["reason"] = f"{kind} is 0"
        return None, trace
    trace["value"] = value
    return value, trace


def _first_denominator(inputs: PeriodInputs, kinds: Sequence[str]
                       ) -> tuple[str | None, float | None, list[dict[str, Any]]]:
    traces = []
    for kind in kinds:
        value, trace = denominator_value(inputs, kind)
        traces.append(trace)
        if value is not None:
            return kind, value, traces
    return None, None, traces


def _baseline(baselines: Mapping[str, BaselineValue], kind: str,
              method: str | None = None) -> BaselineValue | None:
    if method is not None:
        b = baselines.get(f"emissions_{method}_tco2") or baselines.get("emissions_tco2")
        return b if b is not None and b.value > 0 else None
    b = baselines.get(kind)
    return b if b is not None and b.value > 0 else None


def _completeness(inputs: PeriodInputs, carriers: Sequence[str]) -> float | None:
    present = [inputs.carriers[c] for c in carriers if c in inputs.carriers]
    meters = sum(c.meters for c in present)
    if not meters or inputs.days <= 0:
        return None
    return min(1.0, sum(c.covered_s for c in present) / (meters * inputs.days * 86400.0))


def _estimated(inputs: PeriodInputs, carriers: Sequence[str], notes: list[str]) -> float:
    shares = {c: inputs.carriers[c].estimated_share for c in carriers if c in inputs.carriers}
    partly = {c: s for c, s in shares.items() if s > 0}
    if partly:
        notes.append("部分为估算 partly estimated: " + ", ".join(
            f"{c} {s:.1%}" for c, s in sorted(partly.items())))
    return max(shares.values(), default=0.0)


def _quantities(inputs: PeriodInputs, carriers: Sequence[str]) -> list[dict[str, Any]]:
    return [{"carrier": c, "quantity": inputs.carriers[c].quantity,
             "estimated_quantity": inputs.carriers[c].estimated_quantity,
             "energy_tce": inputs.carriers[c].energy_tce, "meters": inputs.carriers[c].meters}
            for c in carriers if c in inputs.carriers]


def compute(ind: Indicator, inputs: PeriodInputs, *,
            baselines: Mapping[str, BaselineValue] | None = None,
            reference: float | None = None, reference_source: str | None = None,
            annual_target_kgco2: Mapping[str, float] | None = None,
            primary_method: str = "location",
            ytd: PeriodInputs | None = None) -> IndicatorResult:
    """Compute one metered indicator for one period.

    ``reference`` overrides the catalogue's (a site's configured quota or target);
    ``annual_target_kgco2`` is the site's annual emission target per method (net emissions);
    ``ytd`` (the year to date) feeds the year-end projection of emission totals.
    """
    baselines = baselines or {}
    ref = reference if reference is not None else ind.reference
    ref_source = reference_source or (
        "; ".join(f"seed {s.seed} table {s.table} line {s.line}" if s.table else
                  f"seed {s.seed} line {s.line}" for s in ind.sources if s.seed)
        or ind.reference_text)
    notes: list[str] = []
    trace: dict[str, Any] = {"period": {"label": inputs.label, "months":
                                        [f"{m:%Y-%m}" for m in inputs.months],
                                        "days": inputs.days, "start": inputs.period_start,
                                        "end": inputs.period_end},
                             "formula": ind.formula_text}
    by_method: dict[str, float | None] = {}
    carriers: tuple[str, ...] = EMISSION_CARRIERS
    projection: dict[str, Any] | None = None
    value: float | None = None
    annualise = inputs.days_in_year / inputs.days if inputs.days > 0 else None
    f = ind.formula

    if not inputs.has_energy_data and f not in ("pue",):
        notes.append("本期无计量数据 no metered data in the period")
    elif f in ("total_reduction", "per_capita", "intensity_reduction", "net_emissions",
               "emissions_per_energy"):
        trace["emissions"] = {m: {"scope1_kgco2": inputs.scope1_kgco2,
                                  "scope2_kgco2": (inputs.scope2_location_kgco2 if m == "location"
                                                   else inputs.scope2_market_kgco2),
                                  "total_tco2": inputs.emissions_tco2(m)} for m in METHODS}
        trace["instruments"] = {"green_power_used_kwh": inputs.green_used_kwh,
                                "certificates_used_kwh": inputs.certificate_used_kwh}
        trace["factors"] = list(inputs.factors)
        den_kind: str | None = None
        den: float | None = None
        den_traces: list[dict[str, Any]] = []
        if ind.denominators:
            den_kind, den, den_traces = _first_denominator(inputs, ind.denominators)
            trace["denominators"] = den_traces
            if den is None:
                notes.append("缺少分母 denominator missing: " + "; ".join(
                    t.get("reason", "") for t in den_traces))
        for method in METHODS:
            e = inputs.emissions_tco2(method)
            v: float | None = None
            if f == "total_reduction":
                b = _baseline(baselines, "", method)
                if b is not None and annualise is not None:
                    v = (1.0 - e * annualise / b.value) * 100.0
                    trace.setdefault("baseline", {})[method] = b.__dict__
            elif f == "per_capita":
                if den is not None and annualise is not None:
                    v = e * annualise / den
            elif f == "intensity_reduction":
                if den is not None and den_kind is not None and annualise is not None:
                    b = _baseline(baselines, "", method)
                    bd = _baseline(baselines, den_kind)
                    if b is not None and bd is not None:
                        now_i = (e * annualise / den if den_kind in STOCK_KINDS else e / den)
                        base_i = b.value / bd.value
                        v = (1.0 - now_i / base_i) * 100.0
                        trace.setdefault("baseline", {})[method] = {
                            "emissions": b.__dict__, "denominator": bd.__dict__,
                            "intensity": base_i, "period_intensity": now_i}
                    elif method == primary_method:
                        trace["baseline_missing"] = [k for k, x in (
                            ("emissions", b), (den_kind, bd)) if x is None]
            elif f == "net_emissions":
                net = e - inputs.sinks_tco2 - inputs.reductions_tco2
                v = net
                trace["offsets"] = {"sinks_tco2": inputs.sinks_tco2,
                                    "reductions_tco2": inputs.reductions_tco2}
            elif f == "emissions_per_energy":
                tce = inputs.energy_tce
                v = e / tce if tce > 0 else None
                trace["energy_tce"] = tce
            by_method[method] = v
        value = by_method.get(primary_method)
        if f == "net_emissions" and annual_target_kgco2 is not None:
            target = annual_target_kgco2.get(primary_method)
            if target is not None and reference is None:
                ref = target / 1000.0 * inputs.days / inputs.days_in_year
                ref_source = (f"site_targets: {target / 1000.0:.3f} tCO2/yr x "
                              f"{inputs.days:.2f} / {inputs.days_in_year:.0f} days")
        if f in ("total_reduction", "intensity_reduction") and "baseline" not in trace:
            notes.append("缺少基准年数据 baseline-year figures missing")
        if ytd is not None and f in ("total_reduction", "net_emissions", "per_capita"):
            projection = _projection(ind, ytd, baselines, primary_method, annual_target_kgco2,
                                     ref, den)
    elif f in ("renewable_share", "clean_energy_rate"):
        carriers = ("grid_import", "onsite_renewable", "grid_export", *FUEL_CARRIERS)
        total = inputs.energy_tce
        el_tce = inputs.electricity_kwh * ELECTRICITY.value / 1000.0
        if f == "renewable_share":
            ren_kwh = inputs.self_consumed_pv_kwh + inputs.green_used_kwh + \
                inputs.certificate_used_kwh
            trace["renewable_kwh"] = {"pv_self_consumed": inputs.self_consumed_pv_kwh,
                                      "green_power": inputs.green_used_kwh,
                                      "certificates": inputs.certificate_used_kwh}
            value = ren_kwh * ELECTRICITY.value / 1000.0 / total * 100.0 if total > 0 else None
        else:
            clean = el_tce + sum(inputs.carriers[c].energy_tce for c in CLEAN_FUELS
                                 if c in inputs.carriers)
            trace["clean_tce"] = clean
            value = clean / total * 100.0 if total > 0 else None
        trace["energy_tce"] = total
        trace["electricity_kwh"] = inputs.electricity_kwh
        trace["tce_coefficient"] = {"electricity_kgce_per_kwh": ELECTRICITY.value,
                                    "source": ELECTRICITY.source}
    elif f == "waste_heat_recovery":
        carriers = ("waste_heat",)
        den, t = denominator_value(inputs, "waste_heat_resource")
        trace["denominators"] = [t]
        if "waste_heat" not in inputs.carriers:
            notes.append("无余热计量 no waste_heat meter reported")
        elif den is None:
            notes.append("缺少分母 denominator missing: " + t.get("reason", ""))
        else:
            value = inputs.qty("waste_heat") / den * 100.0
    elif f == "energy_per_area":
        carriers = ("grid_import", "onsite_renewable", "grid_export", *FUEL_CARRIERS)
        den, t = denominator_value(inputs, "floor_area")
        trace["denominators"] = [t]
        trace["energy_tce"] = inputs.energy_tce
        if den is None:
            notes.append("缺少分母 denominator missing: " + t.get("reason", ""))
        elif annualise is not None:
            value = inputs.energy_tce * 1000.0 * annualise / den
    elif f == "pue":
        carriers = ()
        trace["it_load_kwh"] = inputs.it_load_kwh
        trace["data_centre_kwh"] = inputs.data_centre_kwh
        if inputs.it_load_kwh and inputs.data_centre_kwh is not None:
            value = inputs.data_centre_kwh / inputs.it_load_kwh
        else:
            notes.append("无 IT 负荷数据 no IT load in the period")
    elif f == "water_per_capita":
        carriers = ("water",)
        den, t = denominator_value(inputs, "population")
        trace["denominators"] = [t]
        if "water" not in inputs.carriers:
            notes.append("无用水计量 no water meter reported")
        elif den is None:
            notes.append("缺少分母 denominator missing: " + t.get("reason", ""))
        elif inputs.days > 0:
            value = inputs.qty("water") * 1000.0 / den / inputs.days
    elif f == "water_reuse":
        carriers = ("water",)
        den, t = denominator_value(inputs, "water_reused")
        trace["denominators"] = [t]
        if den is None:
            notes.append("缺少回用水量 reused water missing: " + t.get("reason", ""))
        elif "water" not in inputs.carriers:
            notes.append("无用水计量 no water meter reported")
        else:
            value = den / (den + inputs.qty("water")) * 100.0
    completeness = (inputs.it_completeness if f == "pue"
                    else _completeness(inputs, carriers))
    estimated = _estimated(inputs, carriers, notes)
    trace["quantities"] = _quantities(inputs, carriers)
    if ref is None:
        notes.append("未配置参考值 reference value not configured (indicator_targets)")
    direction = ">=" if ind.direction == "reduction" else ind.direction
    status = judge(value, ref, direction, ind.unit, completeness,
                   None if projection is None else projection.get("meets"), notes)
    return IndicatorResult(ind.id, "metered", value, status, ref, ref_source, notes, by_method,
                           completeness, estimated, trace, projection)


def _projection(ind: Indicator, ytd: PeriodInputs, baselines: Mapping[str, BaselineValue],
                method: str, annual_target_kgco2: Mapping[str, float] | None,
                ref: float | None, den: float | None) -> dict[str, Any] | None:
    """Year end at the current trend (YTD x days_in_year / elapsed days) and the trajectory
    that meets the target (the annual limit spread evenly over the year) [tCO2]."""
    if ytd.days <= 0:
        return None
    e = ytd.emissions_tco2(method)
    if ind.formula == "net_emissions":
        e -= ytd.sinks_tco2 + ytd.reductions_tco2
    projected = e * ytd.days_in_year / ytd.days
    limit: float | None = None
    if ind.formula == "total_reduction" and ind.reference is not None:
        b = _baseline(baselines, "", method)
        limit = b.value * (1 - ind.reference / 100.0) if b else None
    elif ind.formula == "net_emissions" and annual_target_kgco2:
        t = annual_target_kgco2.get(method)
        limit = t / 1000.0 if t is not None else None
    elif ind.formula == "per_capita" and ref is not None and den is not None:
        limit = ref * den
    out: dict[str, Any] = {"method": method, "ytd_tco2": e, "elapsed_days": ytd.days,
                           "days_in_year": ytd.days_in_year, "projected_year_tco2": projected,
                           "annual_limit_tco2": limit}
    if limit is not None:
        remaining_days = max(ytd.days_in_year - ytd.days, 0.0)
        out["trajectory_to_date_tco2"] = limit * ytd.days / ytd.days_in_year
        out["remaining_budget_tco2"] = limit - e
        out["required_tco2_per_day"] = ((limit - e) / remaining_days if remaining_days > 0
                                        else None)
        out["meets"] = projected <= limit
    return out


# --- declared indicators -------------------------------------------------------------------

YES = frozenset({"yes", "y", "true", "1", "是", "已建立", "建立", "已设立", "设立", "done",
                 "established", "已完成", "完成", "已通过", "通过"})


@dataclass(frozen=True)
class Declaration:
    """A declared value with its evidence, who declared it and when (ISO text)."""

    indicator_id: str
    value: str
    evidence: str
    declared_by: str
    declared_at: str


def judge_declared(d: DeclaredIndicator, decl: Declaration | None) -> IndicatorResult:
    """Status of a declared indicator: ``no data`` until declared; a number is compared with
    its reference, a yes/no is met when declared yes (是/建立/设立/yes/true/...)."""
    ref_source = f"seed {d.seed} table {d.table} line {d.line}" if d.table else \
        f"seed {d.seed} line {d.line}"
    if decl is None:
        return IndicatorResult(d.id, "declared", None, NO_DATA, d.reference, ref_source,
                               ["未申报 not declared yet"])
    trace = {"declared": decl.__dict__}
    notes = ["申报值 declared value"]
    if d.value_type == "yes_no":
        met = decl.value.strip().lower() in YES
        return IndicatorResult(d.id, "declared", 1.0 if met else 0.0, MET if met else NOT_MET,
                               d.reference, ref_source, notes, trace=trace)
    try:
        value = float(decl.value)
    except ValueError:
        return IndicatorResult(d.id, "declared", None, NO_DATA, d.reference, ref_source,
                               [f"申报值不是数字 declared value {decl.value!r} is not a number"],
                               trace=trace)
    if isinstance(d.reference, tuple):
        status = MET if d.reference[0] <= value <= d.reference[1] else NOT_MET
    else:
        ref = d.reference if d.reference is not None else 0.0
        status = MET if (value <= ref if d.direction == "<=" else value >= ref) else NOT_MET
    return IndicatorResult(d.id, "declared", value, status, d.reference, ref_source, notes,
                           trace=trace)


def validate_declaration(d: DeclaredIndicator, value: str, evidence: str) -> None:
    """A declaration needs evidence, and a number where the indicator is a number."""
    if not evidence.strip():
        raise IndicatorError(f"{d.id}: evidence (text or file reference) is required")
    if d.value_type == "number":
        try:
            float(value)
        except ValueError:
            raise IndicatorError(f"{d.id}: value {value!r} must be a number [{d.unit}]") from None


# --- people-entered CSV files --------------------------------------------------------------


@dataclass(frozen=True)
class EntryRow:
    """One validated CSV row: a monthly denominator (``period`` = first of month) or a
    baseline-year total (``period`` = 1 January of the year)."""

    line: int
    site_id: str
    kind: str
    period: date
    value: float
    unit: str
    source: str | None


def parse_entries_csv(text: str, known_sites: set[str], *, baseline: bool = False
                      ) -> tuple[list[EntryRow], list[str]]:
    """Validate a denominators CSV (``site_id,kind,month,value,unit,source``; month YYYY-MM)
    or a baselines CSV (``site_id,kind,year,value,unit,source``; source required).

    Returns the rows and the errors (one per bad line, naming line and field); the caller
    writes nothing when there is any error. Units must be the kind's; values finite, >= 0;
    a (site, kind, period) may appear once per file.
    """
    units = BASELINE_UNITS if baseline else DENOMINATOR_UNITS
    when = "year" if baseline else "month"
    need = ["site_id", "kind", when, "value"]
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [h for h in need if h not in header]
    if missing:
        return [], [f"header: missing column(s) {', '.join(missing)}; expected "
                    f"{','.join(need)},unit,source"]
    rows: list[EntryRow] = []
    errors: list[str] = []
    seen: dict[tuple[str, str, date], int] = {}
    for n, raw in enumerate(reader, start=2):
        r = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(r.values()):
            continue
        where = f"line {n}"
        site, kind = r["site_id"], r["kind"]
        if site not in known_sites:
            errors.append(f"{where}: site_id {site!r} is not in the registry")
            continue
        if kind not in units:
            errors.append(f"{where}: kind {kind!r}; accepted: {', '.join(sorted(units))}")
            continue
        try:
            if baseline:
                period = date(int(r["year"]), 1, 1)
            else:
                y, m = (int(p) for p in r["month"].split("-")[:2])
                period = date(y, m, 1)
        except ValueError:
            errors.append(f"{where}: {when} {r[when]!r}; expected "
                          f"{'YYYY' if baseline else 'YYYY-MM'}")
            continue
        try:
            value = float(r["value"])
        except ValueError:
            errors.append(f"{where}: value {r['value']!r} is not a number")
            continue
        if not math.isfinite(value) or value < 0:
            errors.append(f"{where}: value {value} must be finite and >= 0")
            continue
        unit = r.get("unit") or units[kind]
        if unit != units[kind]:
            errors.append(f"{where}: unit {unit!r}; {kind} is in {units[kind]!r}")
            continue
        source = r.get("source") or None
        if baseline and not source:
            errors.append(f"{where}: a baseline needs its source (where the figure comes from)")
            continue
        key = (site, kind, period)
        if key in seen:
            errors.append(f"{where}: {site}/{kind}/{r[when]} already given on line {seen[key]}")
            continue
        seen[key] = n
        rows.append(EntryRow(n, site, kind, period, value, unit, source))
    return rows, errors
