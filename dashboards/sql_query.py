"""A raw-SQL dataquery for Grafana's PostgreSQL data source, in the foundation SDK's shape.

grafana-foundation-sdk 0.0.21 ships query builders for many data sources but none for
PostgreSQL; this is the one we use. A panel target is
``{"refId", "datasource": {"type", "uid"}, "rawSql", "format", "rawQuery": true,
"editorMode": "code"}`` as Grafana's SQL query editor saves it in code mode; ``format`` is
``time_series`` (a ``time`` column, then numeric columns or a string metric column) or
``table``.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common

#: Grafana's plugin id of the core PostgreSQL data source (Grafana >= 10.3; older: postgres).
PG_DATASOURCE_TYPE = "grafana-postgresql-datasource"
#: The uid of the provisioned data source (dashboards/provisioning/datasources/nzc.yaml).
PG_DATASOURCE_UID = "nzc-timescaledb"

Format = typing.Literal["time_series", "table"]


def datasource_ref() -> common.DataSourceRef:
    """The reference every panel and variable uses."""
    return common.DataSourceRef(type_val=PG_DATASOURCE_TYPE, uid=PG_DATASOURCE_UID)


class SqlQuery(cogvariants.Dataquery):
    """One raw SQL target of a panel."""

    def __init__(self, raw_sql: str = "", format_val: Format = "table", ref_id: str = "A",
                 datasource: common.DataSourceRef | None = None) -> None:
        self.raw_sql = raw_sql
        self.format_val: Format = format_val
        self.ref_id = ref_id
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        payload.update({"rawSql": self.raw_sql, "format": self.format_val,
                        "rawQuery": True, "editorMode": "code"})
        return payload


class Sql(cogbuilder.Builder[SqlQuery]):
    """Builder of :class:`SqlQuery`, used like the SDK's query builders."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlQuery(raw_sql, datasource=datasource_ref())

    def build(self) -> SqlQuery:
        return self._internal

    def format(self, format_val: Format) -> typing.Self:
        self._internal.format_val = format_val
        return self

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self
