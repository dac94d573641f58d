"""The stream's logic as plain functions, one per agent, tested without Kafka.

Pipeline order: :func:`compute_energy` (readings -> energy per interval) ->
:func:`apply_factors` (energy -> emissions with the factor used) -> the database sink.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from carbon.counters import (
    ApplyResult,
    MeterSpec,
    MeterState,
    apply_interval_value,
    apply_register,
)
from carbon.emissions import interval_emissions
from carbon.factors import GRID_DATA_YEARS, FactorError, FactorLibrary
from carbon.registry import Meter, Registry
from carbon.tce import TCE_COEFFICIENTS, tce


@dataclass(frozen=True)
class StreamContext:
    """What the agents need besides their input: the registry, the factor library and the
    interval settings (``interval_s`` [s], ``lateness_s`` [s])."""

    registry: Registry
    factors: FactorLibrary
    interval_s: int = 900
    lateness_s: int = 7200
    max_gap_s: float = 1800.0


def meter_spec(meter: Meter, default_max_gap_s: float = 1800.0) -> MeterSpec:
    """Counter limits of ``meter`` in its carrier's canonical unit; a gap between readings
    longer than the meter's ``max_gap_s`` (else ``default_max_gap_s``) [s] is estimated."""
    k = meter.to_canonical
    gap = meter.max_gap_s if meter.max_gap_s is not None else default_max_gap_s
    return MeterSpec(meter.meter_id, meter.register_max * k, meter.max_rate_per_h * k, gap)


def processing_error(record: dict[str, Any], agent: str, exc: Exception) -> dict[str, Any]:
    """A dead letter for a record an agent could not process (a bug or a gap in the domain
    tables): the record is kept with the error, and the agent goes on with the next one."""
    dead = _dead(record, "processing_error", f"{agent}: {type(exc).__name__}: {exc}")
    dead["ts_ms"] = record.get("ts_ms", record.get("interval_start_ms"))
    return dead


def _dead(reading: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {
        "stage": "stream",
        "code": code,
        "reason": reason,
        "mqtt_topic": reading.get("mqtt_topic", ""),
        "payload": json.dumps(reading, sort_keys=True),
        "payload_truncated": False,
        "meter_id": reading.get("meter_id"),
        "ts_ms": reading.get("ts_ms"),
        "received_ms": reading.get("received_ms", 0),
    }


def compute_energy(
    ctx: StreamContext, state_json: dict[str, Any] | None, reading: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply one reading (a :class:`ingest.schema.ReadingRecord` dict) to its meter's state.

    Returns ``(new_state_json, energy_records, dead_letters)``. Energy records carry the
    *current total* of every interval the reading touched, so downstream upserts are
    idempotent and a replay rewrites the same values.
    """
    meter = ctx.registry.meter(reading["meter_id"])
    if meter is None:  # the registry changed between ingest and here
        return state_json or {}, [], [
            _dead(reading, "unknown_meter", f"meter {reading['meter_id']!r} is not registered")
        ]
    spec = meter_spec(meter, ctx.max_gap_s)
    state = MeterState.from_json(state_json)
    kw = {"interval_s": ctx.interval_s, "lateness_s": ctx.lateness_s}
    result: ApplyResult
    if reading["kind"] == "register":
        result = apply_register(spec, state, int(reading["ts_ms"]), float(reading["value"]), **kw)
    else:
        result = apply_interval_value(
            spec, state, int(reading["ts_ms"]), int(reading["period_s"]),
            float(reading["value"]), **kw,
        )
    dead = []
    if result.rejection is not None:
        dead.append(_dead(reading, result.rejection.code, result.rejection.reason))
    if result.event == "replacement":
        # kept beside the quarantined readings it explains, for the installer and reviewers
        dead.append(_dead(reading, "replacement_accepted",
                          f"meter {meter.meter_id!r}: readings first quarantined as spikes agree "
                          "with each other and were accepted as a meter replacement; the span "
                          "before them is counted as missing"))
    records = [
        {
            "meter_id": iv.meter_id,
            "site_id": meter.site_id,
            "carrier": meter.carrier.value,
            "interval_start_ms": iv.interval_start_ms,
            "interval_s": iv.interval_s,
            "quantity": iv.quantity,
            "quantity_unit": meter.canonical_unit,
            "covered_s": iv.covered_s,
            "quality": iv.quality,
            "estimated_quantity": iv.estimated_quantity,
            "estimated_s": iv.estimated_s,
        }
        for iv in result.intervals
    ]
    return state.to_json(), records, dead


def accounting_year(interval_start_ms: int, timezone: str) -> int:
    """Calendar year of the interval start in the site's local time (reviewers' years)."""
    return datetime.fromtimestamp(interval_start_ms / 1000, tz=UTC).astimezone(
        ZoneInfo(timezone)
    ).year


def apply_factors(ctx: StreamContext, energy: dict[str, Any]) -> dict[str, Any]:
    """Add standard-coal equivalent [tce] and emission rows (location- and market-based,
    each with the factor id, version and value used) to an energy record."""
    meter = ctx.registry.meters[energy["meter_id"]]
    site = ctx.registry.sites[meter.site_id]
    year = accounting_year(energy["interval_start_ms"], site.timezone)
    overrides = site.factor_overrides or None
    try:
        rows = interval_emissions(meter.carrier, energy["quantity"], site.province, year,
                                  ctx.factors, grid_overrides=overrides)
    except FactorError:
        # Data older than the oldest published grid factor (e.g. a historical replay): use the
        # oldest data year explicitly. The rows record which factor they used, and
        # `nzc recompute` restates them once a deployment supplies the matching year.
        rows = interval_emissions(meter.carrier, energy["quantity"], site.province, year,
                                  ctx.factors, data_year=min(GRID_DATA_YEARS),
                                  grid_overrides=overrides)
    out = dict(energy)
    # water has no standard-coal equivalent
    out["energy_tce"] = (tce(meter.carrier, energy["quantity"])
                         if meter.carrier in TCE_COEFFICIENTS else None)
    out["emissions"] = [
        {
            "method": r.method,
            "scope": r.scope,
            "emissions_kgco2": r.emissions_kgco2,
            "factor_id": r.factor_id,
            "factor_version": r.factor_version,
            "factor_value": r.factor_value,
            "factor_unit": r.factor_unit,
        }
        for r in rows
    ]
    return out
