"""A restatement with the stream's parameters reproduces the stream's rows: ``recompute`` uses
the stream's emission function, honours the site's ``factor_overrides`` and the old-data factor
fallback (issue 10)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from analytics.recompute import recompute
from carbon.counters import IntervalEnergy
from carbon.factors import FactorLibrary
from carbon.registry import Registry, parse_registry
from core.settings import Settings
from db.sink import Sink, sync_registry
from stream.logic import StreamContext, interval_row

from .conftest import query

pytestmark = pytest.mark.services
T2026 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
T2007 = 1_167_609_600_000  # 2007-01-01T00:00:00Z: older than every published grid factor


def _registry(overrides: bool) -> Registry:
    site: dict[str, Any] = {
            "id": "rcp-site", "name": "recompute site", "type": "park", "province": "sichuan",
            "city": "Chengdu", "baseline_year": 2022,
            "meters": [{"id": "rcp-grid", "carrier": "grid_import", "unit": "kWh",
                        "gateway": "g", "register_max": 1e9, "max_rate_per_h": 1e4}]}
    if overrides:
        site["factor_overrides"] = {"grid_average": {"data_year": 2021}}
    return parse_registry({"sites": [site]})


def _rows(overrides: bool) -> dict[tuple[int, str], tuple[float, str, str]]:
    ctx = StreamContext(registry=_registry(overrides), factors=FactorLibrary())
    out = {}
    for start in (T2026, T2026 + 900_000, T2007):
        row = interval_row(ctx, IntervalEnergy("rcp-grid", start, 900, 100.0, 900.0, "measured"))
        for e in row.emissions:
            out[(start, e.method)] = (e.emissions_kgco2, e.factor_id, e.factor_version)
    return out


def _stored(settings: Settings) -> dict[tuple[int, str], tuple[float, str, str]]:
    got = query(settings, "SELECT (extract(epoch FROM interval_start) * 1000)::bigint, method,"
                " emissions_kgco2, factor_id, factor_version FROM emission_intervals"
                " WHERE meter_id = 'rcp-grid'")
    return {(int(t), m): (kg, fid, ver) for t, m, kg, fid, ver in got}


def test_site_with_overrides_recomputes_to_the_same_rows(services: Settings) -> None:
    with_overrides, without = _rows(True), _rows(False)
    # the override must matter, or this test could not fail: Sichuan 2021 (0.1255) instead of
    # the newest published year for 2026 (2023: 0.1564)
    assert with_overrides[(T2026, "location")][0] == pytest.approx(100.0 * 0.1255)
    assert without[(T2026, "location")][0] == pytest.approx(100.0 * 0.1564)

    reg = _registry(True)
    sync_registry(services.database_admin_url, reg)  # the registry is the owner's to write
    ctx = StreamContext(registry=reg, factors=FactorLibrary())

    async def write() -> None:
        sink = Sink(services.database_url)
        try:
            await sink.write_intervals([
                interval_row(ctx, IntervalEnergy("rcp-grid", s, 900, 100.0, 900.0, "measured"))
                for s in (T2026, T2026 + 900_000, T2007)])
        finally:
            await sink.close()

    asyncio.run(write())
    assert _stored(services) == with_overrides

    audit = recompute(services.database_url, "rcp-site", datetime(2000, 1, 1, tzinfo=UTC),
                      datetime(2030, 1, 1, tzinfo=UTC), FactorLibrary())
    assert audit["rows_changed"] == 0
    assert _stored(services) == with_overrides
