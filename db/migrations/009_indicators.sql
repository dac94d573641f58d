-- Indicators and the per-site scorecard (issue 11; carbon/indicators.py, analytics/scorecard.py,
-- db/scorecard.py): people-entered denominators with a change history, baseline-year totals,
-- configured reference values, declared indicators with evidence, and the scorecard stored per
-- local day so that its history can be plotted.

-- Every change to a denominator made through `nzc denominators import`: who, when, from which
-- file, the old and the new value. A change of an existing value needs --replace, recorded here.
CREATE TABLE denominator_changes (
    change_id     bigserial PRIMARY KEY,
    site_id       text NOT NULL REFERENCES sites (site_id),
    kind          text NOT NULL,
    month         date NOT NULL,
    action        text NOT NULL CHECK (action IN ('insert', 'replace')),
    old_value     double precision,
    new_value     double precision NOT NULL,
    unit          text NOT NULL,
    old_source    text,
    new_source    text,
    replace_flag  boolean NOT NULL DEFAULT false,
    file          text,
    changed_by    text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX denominator_changes_site_idx ON denominator_changes (site_id, kind, month);

-- Baseline-year totals (most pilots' baseline predates metering): entered with their source,
-- or computed from stored data (method 'computed', source names the rollups used).
-- kind: emissions_location_tco2, emissions_market_tco2, emissions_tco2 (both methods),
-- energy_tce, or a denominator kind (annual mean for stocks, annual sum for flows).
CREATE TABLE baselines (
    site_id     text NOT NULL REFERENCES sites (site_id),
    year        integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    kind        text NOT NULL,
    value       double precision NOT NULL CHECK (value >= 0),
    unit        text NOT NULL,
    source      text NOT NULL,
    method      text NOT NULL CHECK (method IN ('entered', 'computed')),
    entered_by  text NOT NULL,
    entered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, year, kind)
);

CREATE TABLE baseline_changes (
    change_id     bigserial PRIMARY KEY,
    site_id       text NOT NULL,
    year          integer NOT NULL,
    kind          text NOT NULL,
    action        text NOT NULL CHECK (action IN ('insert', 'replace')),
    old_value     double precision,
    new_value     double precision NOT NULL,
    old_source    text,
    new_source    text NOT NULL,
    method        text NOT NULL,
    replace_flag  boolean NOT NULL DEFAULT false,
    file          text,
    changed_by    text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);

-- Reference values a site must configure (the public-institution energy quota of
-- DB51/T 2762-2021, the tCO2/tce of the national zero-carbon park policy) or chooses to tighten.
CREATE TABLE indicator_targets (
    site_id          text NOT NULL REFERENCES sites (site_id),
    indicator_id     text NOT NULL,
    reference_value  double precision NOT NULL,
    source           text NOT NULL,
    entered_by       text NOT NULL,
    entered_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, indicator_id)
);

-- Declared (not metered) indicators: every declaration is kept; the newest one counts.
CREATE TABLE declared_values (
    entry_id      bigserial PRIMARY KEY,
    site_id       text NOT NULL REFERENCES sites (site_id),
    indicator_id  text NOT NULL,
    value         text NOT NULL,
    evidence      text NOT NULL CHECK (evidence <> ''),
    declared_by   text NOT NULL,
    declared_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX declared_values_site_idx ON declared_values (site_id, indicator_id, declared_at);

-- The scorecard, one row per site, local day, period kind and indicator (the day's last
-- computation wins), with the trace of every number.
CREATE TABLE scorecard_daily (
    site_id          text NOT NULL REFERENCES sites (site_id),
    day              date NOT NULL,
    period           text NOT NULL,
    indicator_id     text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('metered', 'declared')),
    indicator_type   text NOT NULL,
    method           text NOT NULL,
    value            double precision,
    value_location   double precision,
    value_market     double precision,
    reference        double precision,
    unit             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('met', 'at risk', 'not met', 'no data')),
    completeness     double precision,
    estimated_share  double precision,
    trace            jsonb NOT NULL,
    computed_at      timestamptz NOT NULL,
    PRIMARY KEY (site_id, day, period, indicator_id)
);

CREATE TABLE scorecard_readiness_daily (
    site_id                 text NOT NULL REFERENCES sites (site_id),
    day                     date NOT NULL,
    period                  text NOT NULL,
    ready                   boolean NOT NULL,
    core_total              integer NOT NULL,
    core_met                integer NOT NULL,
    stable_months           integer NOT NULL,
    stable_months_required  integer NOT NULL,
    detail                  jsonb NOT NULL,
    computed_at             timestamptz NOT NULL,
    PRIMARY KEY (site_id, day, period)
);

-- Data centres per site and local month: IT load (it_load meters) and the data centres' total
-- (their parent meters), from the per-meter monthly rollups (both storage paths).
CREATE VIEW data_centre_energy_monthly AS
WITH it AS (
    SELECT r.bucket_start, r.site_id, sum(r.quantity) AS it_load_kwh,
           sum(r.covered_s) AS it_covered_s, count(DISTINCT r.meter_id) AS it_meters
    FROM energy_monthly r JOIN meters m ON m.meter_id = r.meter_id
    WHERE m.carrier = 'it_load'
    GROUP BY r.bucket_start, r.site_id
),
dc AS (
    SELECT r.bucket_start, r.site_id, sum(r.quantity) AS data_centre_kwh,
           count(DISTINCT r.meter_id) AS dc_meters
    FROM energy_monthly r
    WHERE r.meter_id IN (SELECT DISTINCT parent_id FROM meters
                         WHERE carrier = 'it_load' AND parent_id IS NOT NULL)
    GROUP BY r.bucket_start, r.site_id
)
SELECT it.bucket_start, it.site_id, it.it_load_kwh, it.it_covered_s, it.it_meters,
       dc.data_centre_kwh, dc.dc_meters
FROM it LEFT JOIN dc ON dc.site_id = it.site_id AND dc.bucket_start = it.bucket_start;

GRANT SELECT ON denominator_changes, baselines, baseline_changes, indicator_targets,
    declared_values, scorecard_daily, scorecard_readiness_daily, data_centre_energy_monthly
    TO nzc_reader;
GRANT SELECT, INSERT, UPDATE ON denominator_changes, baselines, baseline_changes,
    indicator_targets, declared_values, scorecard_daily, scorecard_readiness_daily
    TO nzc_writer;
GRANT SELECT ON data_centre_energy_monthly TO nzc_writer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nzc_writer;
