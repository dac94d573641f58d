-- Accounting that a reviewer can audit: estimated shares, the registry with its history,
-- people-entered denominators and instruments, recomputation audit.

ALTER TABLE energy_intervals
    ADD COLUMN estimated_quantity double precision NOT NULL DEFAULT 0
        CHECK (estimated_quantity >= 0),
    ADD COLUMN estimated_s double precision NOT NULL DEFAULT 0;

ALTER TABLE sites
    ADD COLUMN construction_start date,
    ADD COLUMN construction_end date,
    ADD COLUMN boundary text,
    ADD COLUMN factor_overrides jsonb NOT NULL DEFAULT '{}';

ALTER TABLE meters ADD COLUMN max_gap_s double precision;

-- Every registry document ever loaded, so that a reviewer can see what the sites, meters and
-- contracts were at any time, and `nzc registry diff` can compare a file with the database.
CREATE TABLE registry_versions (
    version_id  bigserial PRIMARY KEY,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    sha256      text NOT NULL,
    document    jsonb NOT NULL
);

-- Monthly values entered by people (month = first day of the local month).
CREATE TABLE denominators (
    site_id     text NOT NULL REFERENCES sites (site_id),
    kind        text NOT NULL,
    month       date NOT NULL,
    value       double precision NOT NULL CHECK (value >= 0),
    unit        text NOT NULL,
    source      text,
    version_id  bigint REFERENCES registry_versions (version_id),
    PRIMARY KEY (site_id, kind, month)
);

-- Green power, green certificates, carbon sinks, purchased reductions. The primary key on the
-- instrument id is what keeps a certificate from being counted twice.
CREATE TABLE instruments (
    instrument_id  text PRIMARY KEY,
    site_id        text NOT NULL REFERENCES sites (site_id),
    kind           text NOT NULL,
    quantity       double precision NOT NULL CHECK (quantity >= 0),
    unit           text NOT NULL,
    period_start   date NOT NULL,
    period_end     date NOT NULL,
    vintage        integer,
    retired        boolean NOT NULL,
    registry       text,
    version_id     bigint REFERENCES registry_versions (version_id)
);

-- Every recomputation of emissions with another factor (version), with the totals before and
-- after: corrections are recorded, never silent.
CREATE TABLE recompute_audit (
    audit_id        bigserial PRIMARY KEY,
    done_at         timestamptz NOT NULL DEFAULT now(),
    done_by         text NOT NULL DEFAULT current_user,
    site_id         text NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    parameters      jsonb NOT NULL,
    rows_changed    integer NOT NULL,
    before_kgco2    jsonb NOT NULL,
    after_kgco2     jsonb NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON registry_versions, denominators, instruments, recompute_audit
    TO nzc_writer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nzc_writer;
GRANT SELECT ON registry_versions, denominators, instruments, recompute_audit TO nzc_reader;

-- Sub-meter reconciliation: for each parent meter and interval, the parent's quantity, the
-- sum of its children's, and the unmetered remainder (losses and unmetered loads). Children
-- of another carrier (e.g. PV under a grid meter) are not summed.
CREATE VIEW submeter_reconciliation AS
SELECT p.meter_id AS parent_id, p.interval_start, p.site_id, p.carrier,
       p.quantity AS parent_quantity, sum(c.quantity) AS children_quantity,
       p.quantity - sum(c.quantity) AS unmetered_quantity, p.quantity_unit,
       count(c.meter_id) AS children_reporting,
       (SELECT count(*) FROM meters k WHERE k.parent_id = p.meter_id) AS children_registered
FROM energy_intervals p
JOIN meters m ON m.parent_id = p.meter_id
JOIN energy_intervals c ON c.meter_id = m.meter_id AND c.interval_start = p.interval_start
    AND c.quantity_unit = p.quantity_unit
GROUP BY p.meter_id, p.interval_start, p.site_id, p.carrier, p.quantity, p.quantity_unit;
GRANT SELECT ON submeter_reconciliation TO nzc_reader, nzc_writer;

COMMENT ON COLUMN energy_intervals.revision IS
    '1 + the number of corrections: changes made after the interval was complete (measured or estimated); filling an open interval with new readings is not a correction';
