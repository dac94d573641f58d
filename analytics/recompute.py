"""Recompute a site's emissions for a period with another factor (version), with an audit
record of the totals before and after (``recompute_audit``): a restatement is one command and
never a silent edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from carbon.factors import FactorLibrary
from carbon.units import Carrier
from db.sink import UPSERT_EMISSIONS
from stream.logic import emission_rows


def recompute(database_url: str, site_id: str, start: datetime, end: datetime,
              library: FactorLibrary, *, data_year: int | None = None,
              grid_overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Recompute every emission row of ``site_id`` with ``start <= interval_start < end``.

    ``data_year`` pins the grid factors' data year (e.g. the matching year once it is
    published); ``grid_overrides`` as in :func:`carbon.emissions.interval_emissions`, by default
    the site's own ``factor_overrides`` (as the stream used them). The rows come from
    :func:`stream.logic.emission_rows`, the function the stream uses, so that a recompute with
    the stream's parameters gives the stream's rows (data older than every factor included).
    Returns the audit record written.
    """
    with psycopg.connect(database_url, row_factory=dict_row) as conn, conn.transaction():
        site = conn.execute("SELECT province, timezone, factor_overrides FROM sites"
                            " WHERE site_id = %s", (site_id,)).fetchone()
        if site is None:
            raise ValueError(f"unknown site {site_id!r}")
        period = {"site": site_id, "start": start, "end": end}
        before = {r["method"]: r["kg"] for r in conn.execute(
            "SELECT method, sum(emissions_kgco2) AS kg FROM emission_intervals"
            " WHERE site_id = %(site)s AND interval_start >= %(start)s"
            " AND interval_start < %(end)s GROUP BY method", period).fetchall()}
        energy = conn.execute(
            "SELECT meter_id, interval_start, carrier, quantity FROM energy_intervals"
            " WHERE site_id = %(site)s AND interval_start >= %(start)s"
            " AND interval_start < %(end)s", period).fetchall()
        overrides = (grid_overrides if grid_overrides is not None
                     else site["factor_overrides"] or None)
        rows = []
        for e in energy:
            for r in emission_rows(library, Carrier(e["carrier"]), e["quantity"],
                                   int(e["interval_start"].timestamp() * 1000),
                                   province=site["province"], timezone=site["timezone"],
                                   overrides=overrides, data_year=data_year):
                rows.append((e["meter_id"], e["interval_start"], r.method, r.scope, site_id,
                             r.emissions_kgco2, r.factor_id, r.factor_version, r.factor_value,
                             r.factor_unit))
        changed = 0
        with conn.cursor() as cur:
            for i in range(0, len(rows), 5000):
                chunk = rows[i:i + 5000]
                cur.execute(
                    UPSERT_EMISSIONS,
                    [[r[k] for r in chunk] for k in range(10)])
                changed += cur.rowcount
        after = {r["method"]: r["kg"] for r in conn.execute(
            "SELECT method, sum(emissions_kgco2) AS kg FROM emission_intervals"
            " WHERE site_id = %(site)s AND interval_start >= %(start)s"
            " AND interval_start < %(end)s GROUP BY method", period).fetchall()}
        params = {"data_year": data_year, "grid_overrides": overrides}
        audit = conn.execute(
            "INSERT INTO recompute_audit (site_id, period_start, period_end, parameters,"
            " rows_changed, before_kgco2, after_kgco2) VALUES (%s,%s,%s,%s,%s,%s,%s)"
            " RETURNING *",
            (site_id, start, end, Jsonb(params), changed, Jsonb(before), Jsonb(after)),
        ).fetchone()
    return dict(audit) if audit else {}
