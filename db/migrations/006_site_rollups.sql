-- Per-site and per-carrier rollups and the sites' emission targets, on both storage paths:
-- plain views over the per-meter rollups (TimescaleDB continuous aggregates or the plain
-- path's trigger-maintained tables), so dashboards, alerts, analytics and the API read one
-- schema either way.
--
-- Site totals sum BOUNDARY meters only (meters.parent_id IS NULL): a sub-meter's energy is
-- already inside its parent's. The tree is read when the view is queried, so a re-parented
-- meter changes the site totals of its whole history.
--
--   site_energy_{hourly,daily,monthly}
--       bucket_start, site_id, carrier, quantity_unit, quantity [quantity_unit],
--       estimated_quantity [quantity_unit], energy_tce [tce], covered_s [s], intervals, meters
--   site_emissions_{hourly,daily,monthly}
--       bucket_start, site_id, method, emissions_kgco2, scope1_kgco2, scope2_kgco2 [kgCO2],
--       intervals
--   carrier_emissions_{hourly,daily,monthly}
--       bucket_start, site_id, carrier, method, emissions_kgco2 [kgCO2], intervals
--
-- Hours are UTC hours; days and months are local (Asia/Shanghai) days and months.

-- Annual emission targets per site and accounting method (the accounting year is the local
-- year). The month-to-date query spreads a year's target over its months in proportion to
-- their length.
CREATE TABLE site_targets (
    site_id                  text NOT NULL REFERENCES sites (site_id),
    year                     integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    method                   text NOT NULL DEFAULT 'location'
        CHECK (method IN ('location', 'market')),
    annual_emissions_kgco2   double precision NOT NULL CHECK (annual_emissions_kgco2 >= 0),
    source                   text,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, year, method)
);

CREATE VIEW site_energy_hourly AS
SELECT r.bucket_start, r.site_id, r.carrier, r.quantity_unit,
       sum(r.quantity) AS quantity, sum(r.estimated_quantity) AS estimated_quantity,
       sum(r.energy_tce) AS energy_tce, sum(r.covered_s) AS covered_s,
       sum(r.intervals)::bigint AS intervals, count(DISTINCT r.meter_id) AS meters
FROM energy_hourly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.carrier, r.quantity_unit;

CREATE VIEW site_energy_daily AS
SELECT r.bucket_start, r.site_id, r.carrier, r.quantity_unit,
       sum(r.quantity) AS quantity, sum(r.estimated_quantity) AS estimated_quantity,
       sum(r.energy_tce) AS energy_tce, sum(r.covered_s) AS covered_s,
       sum(r.intervals)::bigint AS intervals, count(DISTINCT r.meter_id) AS meters
FROM energy_daily r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.carrier, r.quantity_unit;

CREATE VIEW site_energy_monthly AS
SELECT r.bucket_start, r.site_id, r.carrier, r.quantity_unit,
       sum(r.quantity) AS quantity, sum(r.estimated_quantity) AS estimated_quantity,
       sum(r.energy_tce) AS energy_tce, sum(r.covered_s) AS covered_s,
       sum(r.intervals)::bigint AS intervals, count(DISTINCT r.meter_id) AS meters
FROM energy_monthly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.carrier, r.quantity_unit;

CREATE VIEW site_emissions_hourly AS
SELECT r.bucket_start, r.site_id, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope1'), 0) AS scope1_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope2'), 0) AS scope2_kgco2,
       sum(r.intervals)::bigint AS intervals
FROM emissions_hourly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.method;

CREATE VIEW site_emissions_daily AS
SELECT r.bucket_start, r.site_id, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope1'), 0) AS scope1_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope2'), 0) AS scope2_kgco2,
       sum(r.intervals)::bigint AS intervals
FROM emissions_daily r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.method;

CREATE VIEW site_emissions_monthly AS
SELECT r.bucket_start, r.site_id, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope1'), 0) AS scope1_kgco2,
       coalesce(sum(r.emissions_kgco2) FILTER (WHERE r.scope = 'scope2'), 0) AS scope2_kgco2,
       sum(r.intervals)::bigint AS intervals
FROM emissions_monthly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, r.method;

CREATE VIEW carrier_emissions_hourly AS
SELECT r.bucket_start, r.site_id, m.carrier, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2, sum(r.intervals)::bigint AS intervals
FROM emissions_hourly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, m.carrier, r.method;

CREATE VIEW carrier_emissions_daily AS
SELECT r.bucket_start, r.site_id, m.carrier, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2, sum(r.intervals)::bigint AS intervals
FROM emissions_daily r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, m.carrier, r.method;

CREATE VIEW carrier_emissions_monthly AS
SELECT r.bucket_start, r.site_id, m.carrier, r.method,
       sum(r.emissions_kgco2) AS emissions_kgco2, sum(r.intervals)::bigint AS intervals
FROM emissions_monthly r JOIN meters m ON m.meter_id = r.meter_id AND m.parent_id IS NULL
GROUP BY r.bucket_start, r.site_id, m.carrier, r.method;

-- Readers read everything here; the sink reads the views and does not touch the targets
-- (entered by people, through the migration role or a later API).
GRANT SELECT ON site_targets, site_energy_hourly, site_energy_daily, site_energy_monthly,
    site_emissions_hourly, site_emissions_daily, site_emissions_monthly,
    carrier_emissions_hourly, carrier_emissions_daily, carrier_emissions_monthly
    TO nzc_reader, nzc_writer;
REVOKE INSERT, UPDATE, DELETE ON site_targets, site_energy_hourly, site_energy_daily,
    site_energy_monthly, site_emissions_hourly, site_emissions_daily, site_emissions_monthly,
    carrier_emissions_hourly, carrier_emissions_daily, carrier_emissions_monthly
    FROM nzc_writer;
