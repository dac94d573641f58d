"""The three Grafana dashboards, as code (grafana-foundation-sdk 0.0.21, dashboard schema v1).

- ``nzc-energy-manager`` 能源管理（实时）: emissions today vs the typical day (location and
  market), by carrier and by building/enterprise, the sub-meter tree with the unmetered
  remainder, on-site PV and renewable share, month to date vs the target trajectory;
- ``nzc-facility`` 设施运维: active alerts, night base load per building vs its typical level,
  offline meters and their repair deadlines, sub-meter imbalance;
- ``nzc-reviewer`` 审核: monthly totals with completeness and estimated share, close status,
  restatements.

Panels read only the views and functions of ``db/queries.py``'s storage (rollups of migrations
004-006) and of ``db/migrations/012_dashboard_views.sql``. ``python -m dashboards.build``
writes ``dashboards/json/<folder>/<uid>.json``; a test fails when those files differ from what
this module generates.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.sql_query import Sql, datasource_ref

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import dashboard as db

JSON_DIR = Path(__file__).resolve().parent / "json"

#: Folder (uid, title) of each dashboard, as provisioned (dashboards/provisioning).
FOLDERS = {
    "energy-manager": "能源管理 Energy management",
    "facility": "设施运维 Facility staff",
    "reviewer": "审核 Reviewers",
}

BOUNDARY_SITE = "site_id IN ($site)"


@dataclass(frozen=True)
class Spec:
    """A generated dashboard with its folder."""

    uid: str
    folder: str
    model: dm.Dashboard

    def to_dict(self) -> dict[str, Any]:
        """The dashboard JSON; panels numbered 1, 2, ... in layout order."""
        out: dict[str, Any] = json.loads(json.dumps(self.model, cls=JSONEncoder))
        for i, panel in enumerate(out.get("panels", []), start=1):
            panel["id"] = i
        return out


def _variables() -> list[db.QueryVariable | db.CustomVariable]:
    ds = datasource_ref()
    site = (db.QueryVariable("site").label("站点 Site").datasource(ds)
            .query("SELECT site_id AS __value, name || ' (' || site_id || ')' AS __text"
                   " FROM sites ORDER BY site_id")
            .multi(True).include_all(True).refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD))
    group = (db.QueryVariable("group").label("楼栋/企业 Building or group").datasource(ds)
             .query("SELECT DISTINCT coalesce(group_name, '-') FROM meters"
                    " WHERE site_id IN ($site) ORDER BY 1")
             .multi(True).include_all(True)
             .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD))
    meter = (db.QueryVariable("meter").label("表计 Meter").datasource(ds)
             .query("SELECT meter_id FROM meters WHERE site_id IN ($site)"
                    " AND coalesce(group_name, '-') IN ($group) ORDER BY 1")
             .multi(True).include_all(True)
             .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD))
    method = (db.CustomVariable("method").label("核算方法 Method")
              .values("location,market")
              .current(dm.VariableOption(text="location", value="location", selected=True))
              .options([dm.VariableOption(text=v, value=v, selected=v == "location")
                        for v in ("location", "market")]))
    return [site, group, meter, method]


def _ts(title: str, sql: str, unit: str, w: int = 12, h: int = 8,
        stacked: bool = False) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).datasource(datasource_ref()).unit(unit)
         .with_target(Sql(sql).format("time_series")).span(w).height(h)
         .fill_opacity(15 if stacked else 5))
    if stacked:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    return p


def _stat(title: str, sql: str, unit: str, w: int = 6, h: int = 5) -> stat.Panel:
    return (stat.Panel().title(title).datasource(datasource_ref()).unit(unit)
            .with_target(Sql(sql).format("table")).span(w).height(h)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


def _table(title: str, sql: str, w: int = 24, h: int = 9) -> table.Panel:
    return (table.Panel().title(title).datasource(datasource_ref())
            .with_target(Sql(sql).format("table")).span(w).height(h))


def _dashboard(uid: str, title: str, tags: list[str], time_from: str,
               refresh: str) -> db.Dashboard:
    d = (db.Dashboard(title).uid(uid).tags(["nzc", *tags]).timezone("Asia/Shanghai")
         .time(time_from, "now").refresh(refresh).editable().tooltip(
             dm.DashboardCursorSync.CROSSHAIR))
    for v in _variables():
        d = d.with_variable(v)
    return d


def energy_manager() -> Spec:
    """能源管理（实时） Energy manager, live."""
    tvt = "nzc_today_vs_typical($__timeTo()::timestamptz, 4)"
    d = _dashboard("nzc-energy-manager", "能源管理（实时） Energy manager (live)",
                   ["energy-manager"], "now-24h", "1m")
    d = d.with_panel(_stat(
        "今日排放与典型日 Emissions today vs typical (kgCO2)",
        f"SELECT sum(today_location_kgco2) AS \"今日 today (location)\",\n"
        f"       sum(typical_location_kgco2) FILTER (WHERE hour_start < $__timeTo()::timestamptz)"
        f" AS \"典型 typical (location)\",\n"
        f"       sum(today_market_kgco2) AS \"今日 today (market)\",\n"
        f"       sum(typical_market_kgco2) FILTER (WHERE hour_start < $__timeTo()::timestamptz)"
        f" AS \"典型 typical (market)\"\n"
        f"FROM {tvt}\nWHERE {BOUNDARY_SITE}", "kg", w=12))
    d = d.with_panel(_stat(
        "本月累计 / 目标 Month to date vs target trajectory",
        "SELECT sum(mtd_kgco2) / nullif(sum(target_to_date_kgco2), 0)"
        " AS \"累计/目标 MTD / target\"\n"
        "FROM nzc_month_to_date($__timeTo()::timestamptz, '$method')\n"
        f"WHERE {BOUNDARY_SITE}", "percentunit", w=6))
    d = d.with_panel(_stat(
        "可再生能源占比 Renewable share",
        "SELECT sum(quantity) FILTER (WHERE carrier = 'onsite_renewable')\n"
        "       / nullif(sum(CASE WHEN carrier = 'grid_export' THEN -quantity"
        " ELSE quantity END), 0) AS \"可再生 renewable share\"\n"
        "FROM site_energy_hourly\n"
        f"WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE}\n"
        "  AND carrier IN ('grid_import', 'grid_export', 'onsite_renewable', 'ev_charging',"
        " 'it_load')", "percentunit", w=6))
    d = d.with_panel(_ts(
        "今日与典型日（逐时） Today vs typical day, hourly (kgCO2)",
        "SELECT hour_start AS time,\n"
        "       sum(today_location_kgco2) AS \"今日 today (location)\",\n"
        "       sum(typical_location_kgco2) AS \"典型 typical (location)\",\n"
        "       sum(today_market_kgco2) AS \"今日 today (market)\",\n"
        "       sum(typical_market_kgco2) AS \"典型 typical (market)\"\n"
        f"FROM {tvt}\nWHERE {BOUNDARY_SITE}\nGROUP BY hour_start\nORDER BY 1", "kg"))
    d = d.with_panel(_ts(
        "按能源品种排放 Emissions by carrier (kgCO2)",
        "SELECT $__timeGroupAlias(bucket_start, $__interval), carrier AS metric,\n"
        "       sum(emissions_kgco2) AS value\n"
        "FROM carrier_emissions_hourly\n"
        f"WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE} AND method = '$method'\n"
        "GROUP BY 1, 2\nORDER BY 1, 2", "kg", stacked=True))
    d = d.with_panel(_ts(
        "按楼栋/企业排放 Emissions by building or enterprise (kgCO2)",
        "SELECT $__timeGroupAlias(bucket_start, $__interval), group_name AS metric,\n"
        "       sum(emissions_kgco2) AS value\n"
        "FROM dash_group_emissions_hourly\n"
        f"WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE} AND method = '$method'\n"
        "  AND group_name IN ($group)\n"
        "GROUP BY 1, 2\nORDER BY 1, 2", "kg", stacked=True))
    d = d.with_panel(_ts(
        "现场光伏发电 On-site PV generation (kWh)",
        "SELECT $__timeGroupAlias(bucket_start, $__interval),\n"
        "       sum(quantity) AS \"光伏 PV\"\n"
        "FROM site_energy_hourly\n"
        f"WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE}"
        " AND carrier = 'onsite_renewable'\n"
        "GROUP BY 1\nORDER BY 1", "kwatth"))
    d = d.with_panel(_ts(
        "本月累计与目标轨迹 Month to date vs target trajectory (kgCO2)",
        "WITH b AS (\n"
        "    SELECT date_trunc('month', $__timeTo()::timestamptz, 'Asia/Shanghai') AS m0,\n"
        "           date_trunc('year', $__timeTo()::timestamptz, 'Asia/Shanghai') AS y0,\n"
        "           extract(year FROM $__timeTo()::timestamptz AT TIME ZONE 'Asia/Shanghai')"
        "::int AS y\n"
        "), d AS (\n"
        "    SELECT r.bucket_start, sum(r.emissions_kgco2) AS kg\n"
        "    FROM site_emissions_daily r, b\n"
        f"    WHERE r.{BOUNDARY_SITE} AND r.method = '$method'\n"
        "      AND r.bucket_start >= b.m0 AND r.bucket_start < $__timeTo()::timestamptz\n"
        "    GROUP BY r.bucket_start\n"
        "), tg AS (\n"
        "    SELECT sum(t.annual_emissions_kgco2) AS annual FROM site_targets t, b\n"
        f"    WHERE t.{BOUNDARY_SITE} AND t.method = '$method' AND t.year = b.y\n"
        ")\n"
        "SELECT d.bucket_start + interval '1 day' AS time,\n"
        "       sum(d.kg) OVER (ORDER BY d.bucket_start) AS \"累计 month to date\",\n"
        "       tg.annual * extract(epoch FROM d.bucket_start + interval '1 day' - b.m0)\n"
        "           / extract(epoch FROM ((b.y0 AT TIME ZONE 'Asia/Shanghai') + interval"
        " '1 year') AT TIME ZONE 'Asia/Shanghai' - b.y0) AS \"目标轨迹 target\"\n"
        "FROM d, tg, b\nORDER BY 1", "kg"))
    d = d.with_panel(_table(
        "分表树与未计量余量 Sub-meter tree with unmetered remainder",
        "SELECT t.site_id AS \"站点 site\", t.path AS \"表计 meter\","
        " t.carrier AS \"品种 carrier\",\n"
        "       t.group_name AS \"楼栋 group\", e.quantity AS \"用量 quantity\","
        " t.canonical_unit AS \"单位 unit\",\n"
        "       s.children_quantity AS \"分表合计 sub-meters\","
        " s.unmetered_quantity AS \"未计量 unmetered\",\n"
        "       s.unmetered_quantity / nullif(s.parent_quantity, 0)"
        " AS \"未计量占比 unmetered share\"\n"
        "FROM dash_meter_tree t\n"
        "LEFT JOIN (SELECT meter_id, sum(quantity) AS quantity FROM energy_hourly\n"
        f"           WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE}"
        " GROUP BY meter_id) e\n"
        "       ON e.meter_id = t.meter_id\n"
        "LEFT JOIN (SELECT parent_id, sum(parent_quantity) AS parent_quantity,\n"
        "                  sum(children_quantity) AS children_quantity,\n"
        "                  sum(unmetered_quantity) AS unmetered_quantity\n"
        "           FROM dash_submeter_hourly\n"
        f"           WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE}"
        " GROUP BY parent_id) s\n"
        "       ON s.parent_id = t.meter_id\n"
        f"WHERE t.{BOUNDARY_SITE} AND t.meter_id IN ($meter)\n"
        "ORDER BY t.site_id, t.path"))
    return Spec("nzc-energy-manager", "energy-manager", d.build())


def facility() -> Spec:
    """设施运维 Facility staff."""
    d = _dashboard("nzc-facility", "设施运维 Facility staff", ["facility"], "now-7d", "5m")
    d = d.with_panel(_table(
        "当前告警 Active alerts",
        "SELECT site_id AS \"站点 site\", kind AS \"类型 kind\", subject AS \"对象 subject\",\n"
        "       severity AS \"级别 severity\", state AS \"状态 state\","
        " since AS \"开始 since\",\n"
        "       deadline AS \"期限 deadline\", value AS \"值 value\","
        " threshold AS \"阈值 threshold\",\n"
        "       acked_by AS \"确认人 acknowledged by\"\n"
        "FROM dash_active_alerts\n"
        f"WHERE {BOUNDARY_SITE}\n"
        "ORDER BY severity, since", h=8))
    d = d.with_panel(_table(
        "离线表计与维修期限 Offline meters and repair deadlines",
        "SELECT site_id AS \"站点 site\", meter_id AS \"表计 meter\","
        " group_name AS \"楼栋 group\",\n"
        "       gateway_id AS \"网关 gateway\", last_reading_at AS \"最后读数 last reading\",\n"
        "       silent_h AS \"静默小时 silent h\", repair_due AS \"维修期限 repair due\"\n"
        "FROM dash_meter_status\n"
        f"WHERE offline AND {BOUNDARY_SITE} AND meter_id IN ($meter)\n"
        "ORDER BY repair_due NULLS FIRST, meter_id", h=8))
    d = d.with_panel(_ts(
        "夜间基础负荷 Night base load per building, 00:00-05:00 (kW)",
        "SELECT day_start AS time, group_name AS metric, night_kw AS value\n"
        "FROM dash_night_base_load\n"
        f"WHERE $__timeFilter(day_start) AND {BOUNDARY_SITE} AND group_name IN ($group)\n"
        "ORDER BY 1, 2", "kwatt"))
    d = d.with_panel(_table(
        "夜间负荷对比典型 Last night vs typical (kW)",
        "SELECT DISTINCT ON (site_id, group_name) site_id AS \"站点 site\","
        " group_name AS \"楼栋 group\",\n"
        "       day AS \"日期 night of\", night_kw AS \"夜间 kW\","
        " typical_kw AS \"典型 typical kW\",\n"
        "       night_kw / nullif(typical_kw, 0) AS \"比值 ratio\"\n"
        "FROM dash_night_base_load\n"
        f"WHERE $__timeFilter(day_start) AND {BOUNDARY_SITE} AND group_name IN ($group)\n"
        "ORDER BY site_id, group_name, day DESC", w=12, h=8))
    d = d.with_panel(_ts(
        "分表不平衡（未计量占比） Sub-meter imbalance: unmetered share",
        "SELECT $__timeGroupAlias(bucket_start, $__interval), parent_id AS metric,\n"
        "       sum(unmetered_quantity) / nullif(sum(parent_quantity), 0) AS value\n"
        "FROM dash_submeter_hourly\n"
        f"WHERE $__timeFilter(bucket_start) AND {BOUNDARY_SITE} AND parent_id IN ($meter)\n"
        "GROUP BY 1, 2\nORDER BY 1, 2", "percentunit", w=24))
    return Spec("nzc-facility", "facility", d.build())


def reviewer() -> Spec:
    """审核 Reviewers."""
    d = _dashboard("nzc-reviewer", "审核 Reviewers", ["reviewer"], "now-1y", "1h")
    d = d.with_panel(_table(
        "月度合计、完整性与估算占比 Monthly totals, completeness, estimated share",
        "SELECT site_id AS \"站点 site\", month AS \"月份 month\",\n"
        "       location_kgco2 / 1000 AS \"基于位置 location tCO2\",\n"
        "       market_kgco2 / 1000 AS \"基于市场 market tCO2\",\n"
        "       scope1_kgco2 / 1000 AS \"范围一 scope 1 tCO2\", energy_tce AS \"能耗 tce\",\n"
        "       completeness AS \"完整性 completeness\","
        " estimated_share AS \"估算占比 estimated share\"\n"
        "FROM dash_site_monthly\n"
        f"WHERE $__timeFilter(month_start) AND {BOUNDARY_SITE}\n"
        "ORDER BY site_id, month", h=10))
    d = d.with_panel(_ts(
        "月度排放 Monthly emissions (kgCO2)",
        "SELECT month_start AS time, site_id AS metric,\n"
        "       CASE WHEN '$method' = 'market' THEN market_kgco2 ELSE location_kgco2 END"
        " AS value\n"
        "FROM dash_site_monthly\n"
        f"WHERE $__timeFilter(month_start) AND {BOUNDARY_SITE}\n"
        "ORDER BY 1, 2", "kg"))
    d = d.with_panel(_table(
        "月结状态 Monthly close status",
        "SELECT site_id AS \"站点 site\", month AS \"月份 month\", state AS \"状态 state\",\n"
        "       version AS \"版本 version\", submitted_at AS \"提交 submitted\",\n"
        "       returned_at AS \"退回 returned\", verified_at AS \"核定 verified\","
        " comment AS \"意见 comment\"\n"
        "FROM dash_close_status\n"
        f"WHERE {BOUNDARY_SITE}\n"
        "  AND month >= ($__timeFrom()::timestamptz AT TIME ZONE 'Asia/Shanghai')::date\n"
        "ORDER BY site_id, month", w=12))
    d = d.with_panel(_table(
        "重算记录 Restatements (recompute audit)",
        "SELECT done_at AS \"时间 done at\", done_by AS \"操作人 by\", site_id AS \"站点 site\",\n"
        "       period_start AS \"起 from\", period_end AS \"止 to\","
        " rows_changed AS \"改动行 rows\",\n"
        "       before_kgco2 AS \"之前 before kgCO2\", after_kgco2 AS \"之后 after kgCO2\",\n"
        "       parameters AS \"参数 parameters\"\n"
        "FROM dash_restatements\n"
        f"WHERE $__timeFilter(done_at) AND {BOUNDARY_SITE}\n"
        "ORDER BY done_at DESC", w=12))
    return Spec("nzc-reviewer", "reviewer", d.build())


def all_dashboards() -> list[Spec]:
    """Every dashboard, in a fixed order."""
    return [energy_manager(), facility(), reviewer()]


def render(spec: Spec) -> str:
    """The committed JSON text of a dashboard (stable: sorted keys, 2-space indent)."""
    return json.dumps(spec.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def json_path(spec: Spec, root: Path = JSON_DIR) -> Path:
    return root / spec.folder / f"{spec.uid}.json"


def write(root: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard's JSON under ``root``; returns the paths."""
    out = []
    for spec in all_dashboards():
        path = json_path(spec, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(spec), encoding="utf-8")
        out.append(path)
    return out


def main() -> int:
    for path in write():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
