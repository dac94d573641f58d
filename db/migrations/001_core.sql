-- Core schema: registry, readings audit, energy and emission intervals, dead letters.
-- Times are timestamptz (UTC inside); units are in column names or in a *_unit column.

CREATE TABLE sites (
    site_id        text PRIMARY KEY,
    name           text NOT NULL,
    site_type      text NOT NULL,
    province       text NOT NULL,
    city           text NOT NULL,
    baseline_year  integer NOT NULL,
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meters (
    meter_id        text PRIMARY KEY,
    site_id         text NOT NULL REFERENCES sites (site_id),
    carrier         text NOT NULL,
    unit            text NOT NULL,
    canonical_unit  text NOT NULL,
    gateway_id      text NOT NULL,
    parent_id       text,
    group_name      text,
    register_max    double precision NOT NULL CHECK (register_max > 0),
    max_rate_per_h  double precision NOT NULL CHECK (max_rate_per_h > 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meters_site_idx ON meters (site_id);

-- Audit of every accepted reading (value in the carrier's canonical unit). A second reading
-- for the same (meter, ts) with another value is a correction: the row keeps the newest value
-- and counts its revisions.
CREATE TABLE readings (
    meter_id      text NOT NULL,
    ts            timestamptz NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('register', 'interval')),
    value         double precision NOT NULL,
    value_unit    text NOT NULL,
    period_s      integer,
    received_at   timestamptz NOT NULL,
    mqtt_topic    text NOT NULL,
    revision      integer NOT NULL DEFAULT 1,
    PRIMARY KEY (meter_id, ts)
);

-- Quantity per meter and fixed interval, in the carrier's canonical unit (kWh, m3, GJ, kg).
-- covered_s: seconds of the interval covered by measured data; quality: measured (fully
-- covered) / partial / estimated / missing / quarantined.
CREATE TABLE energy_intervals (
    meter_id        text NOT NULL,
    interval_start  timestamptz NOT NULL,
    interval_s      integer NOT NULL CHECK (interval_s > 0),
    site_id         text NOT NULL,
    carrier         text NOT NULL,
    quantity        double precision NOT NULL CHECK (quantity >= 0),
    quantity_unit   text NOT NULL,
    energy_tce      double precision,
    covered_s       double precision NOT NULL,
    quality         text NOT NULL
        CHECK (quality IN ('measured', 'partial', 'estimated', 'missing', 'quarantined')),
    revision        integer NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, interval_start)
);
CREATE INDEX energy_intervals_site_time_idx ON energy_intervals (site_id, interval_start);

-- Emissions per meter, interval and accounting method (location / market), with the factor
-- that produced them.
CREATE TABLE emission_intervals (
    meter_id         text NOT NULL,
    interval_start   timestamptz NOT NULL,
    method           text NOT NULL CHECK (method IN ('location', 'market')),
    scope            text NOT NULL CHECK (scope IN ('scope1', 'scope2')),
    site_id          text NOT NULL,
    emissions_kgco2  double precision NOT NULL,
    factor_id        text NOT NULL,
    factor_version   text NOT NULL,
    factor_value     double precision NOT NULL,
    factor_unit      text NOT NULL,
    revision         integer NOT NULL DEFAULT 1,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, interval_start, method)
);
CREATE INDEX emission_intervals_site_time_idx ON emission_intervals (site_id, interval_start);

-- Every rejected input with its reason. dedup_key makes a replay after a crash store the same
-- rejection once.
CREATE TABLE dead_letters (
    id                 bigserial PRIMARY KEY,
    dedup_key          text NOT NULL UNIQUE,
    stage              text NOT NULL,
    code               text NOT NULL,
    reason             text NOT NULL,
    mqtt_topic         text NOT NULL,
    payload            text NOT NULL,
    payload_truncated  boolean NOT NULL DEFAULT false,
    meter_id           text,
    received_at        timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
