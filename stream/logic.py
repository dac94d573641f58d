"""The stream's logic as plain functions, tested without Kafka.

One reading at a time, :func:`apply_reading` updates its meter's :class:`MeterState` and says
which intervals changed; once per flush, :func:`interval_row` turns the newest total of each
changed interval into an :class:`~core.records.IntervalRow` with standard coal and emission
rows (:func:`emission_rows`, the one function from energy to emissions, also used by
:mod:`analytics.recompute`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from carbon.counters import (
    ApplyResult,
    IntervalEnergy,
    MeterSpec,
    MeterState,
    apply_interval_value,
    apply_register,
)
from carbon.emissions import interval_emissions
from carbon.factors import GRID_DATA_YEARS, FactorError, FactorLibrary
from carbon.registry import Meter, Registry
from carbon.tce import TCE_COEFFICIENTS, tce
from carbon.units import Carrier
from core.records import (
    DeadLetter,
    EmissionRow,
    IntervalRow,
    ReadingRecord,
    make_dead_letter,
)


@dataclass(frozen=True)
class StreamContext:
    """What the agent needs besides its input: the registry, the factor library and the
    interval settings (``interval_s`` [s], ``lateness_s`` [s], ``max_gap_s`` [s])."""

    registry: Registry
    factors: FactorLibrary
    interval_s: int = 900
    lateness_s: int = 7200
    max_gap_s: float = 1800.0
    #: counter limits per meter id, filled on first use
    specs: dict[str, MeterSpec] = field(default_factory=dict, compare=False, repr=False)


def meter_spec(meter: Meter, default_max_gap_s: float = 1800.0) -> MeterSpec:
    """Counter limits of ``meter`` in its carrier's canonical unit; a gap between readings
    longer than the meter's ``max_gap_s`` (else ``default_max_gap_s``) [s] is estimated."""
    k = meter.to_canonical
    gap = meter.max_gap_s if meter.max_gap_s is not None else default_max_gap_s
    return MeterSpec(meter.meter_id, meter.register_max * k, meter.max_rate_per_h * k, gap)


def _spec(ctx: StreamContext, meter: Meter) -> MeterSpec:
    """:func:`meter_spec` of ``meter``, computed once per context (registry) and meter."""
    spec = ctx.specs.get(meter.meter_id)
    if spec is None:
        spec = ctx.specs[meter.meter_id] = meter_spec(meter, ctx.max_gap_s)
    return spec


#: Dead letter codes of apply_reading that mean "this reading was not used".
NOT_USED = frozenset({"too_late", "spike", "interval_too_late", "unknown_meter", "schema"})


def stream_dead_letter(reading: ReadingRecord | Mapping[str, Any], code: str,
                       reason: str) -> DeadLetter:
    """A stream-stage rejection of ``reading`` (kept with the reading as JSON)."""
    d = reading.to_dict() if isinstance(reading, ReadingRecord) else dict(reading)
    ts = d.get("ts_ms", d.get("interval_start_ms"))
    return make_dead_letter(
        stage="stream", code=code, reason=reason, mqtt_topic=str(d.get("mqtt_topic", "")),
        payload=json.dumps(d, sort_keys=True, default=str),
        received_ms=int(d.get("received_ms") or 0),
        meter_id=None if d.get("meter_id") is None else str(d["meter_id"]),
        ts_ms=None if ts is None else int(ts),
    )


def processing_error(record: ReadingRecord | Mapping[str, Any], agent: str,
                     exc: Exception) -> DeadLetter:
    """A dead letter for a record the stream could not process (a bug or a gap in the domain
    tables): the record is kept with the error, and the agent goes on with the next one."""
    return stream_dead_letter(record, "processing_error",
                              f"{agent}: {type(exc).__name__}: {exc}")


def apply_reading(
    ctx: StreamContext, state: MeterState, reading: ReadingRecord
) -> tuple[list[IntervalEnergy], list[DeadLetter]]:
    """Apply one reading to its meter's ``state`` (mutated in place).

    Returns the *current totals* of every interval the reading touched (so downstream upserts
    are idempotent and a replay rewrites the same values) and its rejections.
    """
    meter = ctx.registry.meter(reading.meter_id)
    if meter is None:  # the registry changed between ingest and here
        return [], [stream_dead_letter(reading, "unknown_meter",
                                       f"meter {reading.meter_id!r} is not registered")]
    spec = _spec(ctx, meter)
    result: ApplyResult
    if reading.kind == "register":
        result = apply_register(spec, state, reading.ts_ms, reading.value,
                                interval_s=ctx.interval_s, lateness_s=ctx.lateness_s)
    else:
        if reading.period_s is None:
            return [], [stream_dead_letter(reading, "schema", "interval value without period_s")]
        result = apply_interval_value(spec, state, reading.ts_ms, reading.period_s,
                                      reading.value, interval_s=ctx.interval_s,
                                      lateness_s=ctx.lateness_s)
    dead = []
    if result.rejection is not None:
        dead.append(stream_dead_letter(reading, result.rejection.code, result.rejection.reason))
    if result.event == "replacement":
        # kept beside the quarantined readings it explains, for the installer and reviewers
        dead.append(stream_dead_letter(
            reading, "replacement_accepted",
            f"meter {meter.meter_id!r}: readings first quarantined as spikes agree with each "
            "other and were accepted as a meter replacement; the span before them is counted "
            "as missing"))
    return result.intervals, dead


@lru_cache(maxsize=4096)
def accounting_year(interval_start_ms: int, timezone: str) -> int:
    """Calendar year of the interval start in the site's local time (reviewers' years)."""
    return datetime.fromtimestamp(interval_start_ms / 1000, tz=UTC).astimezone(
        ZoneInfo(timezone)
    ).year


def emission_rows(
    factors: FactorLibrary, carrier: Carrier, quantity: float, interval_start_ms: int, *,
    province: str, timezone: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None, data_year: int | None = None,
) -> tuple[EmissionRow, ...]:
    """Emission rows (location- and market-based, each with the factor id, version and value
    used) of ``quantity`` [canonical unit] of ``carrier`` in the interval starting at
    ``interval_start_ms``, for a site in ``province`` keeping its books in ``timezone``.

    The accounting year is the local year of the interval start; the grid factors are the
    newest published data year <= it (:func:`carbon.emissions.interval_emissions`), or
    ``data_year`` when given (a restatement); ``overrides`` are the site's
    ``factor_overrides``. Data older than the oldest published grid factor (a historical
    replay) uses the oldest data year explicitly: the rows say which factor they used, and
    ``nzc recompute`` restates them once the matching year is supplied. The one function from
    energy to emissions: the stream and :func:`analytics.recompute.recompute` both call it.
    """
    year = accounting_year(interval_start_ms, timezone)
    try:
        rows = interval_emissions(carrier, quantity, province, year, factors,
                                  data_year=data_year, grid_overrides=overrides or None)
    except FactorError:
        if data_year is not None:
            raise
        rows = interval_emissions(carrier, quantity, province, year, factors,
                                  data_year=min(GRID_DATA_YEARS),
                                  grid_overrides=overrides or None)
    return tuple(
        EmissionRow(method=r.method, scope=r.scope, emissions_kgco2=r.emissions_kgco2,
                    factor_id=r.factor_id, factor_version=r.factor_version,
                    factor_value=r.factor_value, factor_unit=r.factor_unit)
        for r in rows
    )


def interval_row(ctx: StreamContext, iv: IntervalEnergy) -> IntervalRow:
    """The stored row of one interval's energy: quantity, standard coal [tce] (``None`` for
    water, which has none) and emission rows."""
    meter = ctx.registry.meters[iv.meter_id]
    site = ctx.registry.sites[meter.site_id]
    return IntervalRow(
        meter_id=iv.meter_id, site_id=meter.site_id, carrier=meter.carrier.value,
        interval_start_ms=iv.interval_start_ms, interval_s=iv.interval_s,
        quantity=iv.quantity, quantity_unit=meter.canonical_unit, covered_s=iv.covered_s,
        quality=iv.quality, estimated_quantity=iv.estimated_quantity,
        estimated_s=iv.estimated_s,
        energy_tce=(tce(meter.carrier, iv.quantity)
                    if meter.carrier in TCE_COEFFICIENTS else None),
        emissions=emission_rows(ctx.factors, meter.carrier, iv.quantity, iv.interval_start_ms,
                                province=site.province, timezone=site.timezone,
                                overrides=site.factor_overrides),
    )
