-- Alerts (issue 13): the rules as data, the state of every alert instance, every state
-- change with the value, threshold and data it was computed from, acknowledgements, and
-- the delivery attempts of our robot receiver. Written by the alert evaluator and the
-- receiver (nzc_writer); read by dashboards, the API and the reviewers' close (nzc_reader).

-- One row per rule, loaded from alerts/rules.yaml (`nzc alerts rules load`).
CREATE TABLE IF NOT EXISTS alert_rules (
    rule_id     text PRIMARY KEY,
    kind        text NOT NULL,
    definition  jsonb NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

-- Current state of one alert instance: a rule applied to one subject (meter, gateway,
-- parent meter, site). fingerprint = rule_id + subject; state is one of
--   inactive -> pending -> firing -> resolved (-> pending again).
-- acked_* and silence_id record an acknowledgement (a silence in Alertmanager until the
-- alert resolves). am_synced_at: when Alertmanager last accepted this state (so that a
-- restarted evaluator re-sends what it had not posted yet, and nothing twice).
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        bigserial PRIMARY KEY,
    fingerprint     text NOT NULL UNIQUE,
    rule_id         text NOT NULL,
    kind            text NOT NULL,
    site_id         text NOT NULL,
    subject         text NOT NULL,
    labels          jsonb NOT NULL,
    state           text NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
    severity        text NOT NULL,
    pending_since   timestamptz,
    firing_since    timestamptz,
    last_true_at    timestamptz,
    resolved_at     timestamptz,
    value           double precision,
    threshold       double precision,
    typical         double precision,
    deadline        timestamptz,
    evidence        jsonb NOT NULL DEFAULT '{}',
    acked_by        text,
    acked_at        timestamptz,
    silence_id      text,
    am_synced_at    timestamptz,
    am_state        text,
    observed_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alerts_state_idx ON alerts (state, site_id);

-- Every state change, append-only: pending, firing, resolved, acknowledged, silenced.
CREATE TABLE IF NOT EXISTS alert_events (
    event_id     bigserial PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (alert_id),
    at           timestamptz NOT NULL DEFAULT now(),
    event        text NOT NULL
        CHECK (event IN ('pending', 'firing', 'resolved', 'cancelled', 'acknowledged',
                         'silenced', 'escalated')),
    data_time    timestamptz,
    value        double precision,
    threshold    double precision,
    typical      double precision,
    evidence     jsonb NOT NULL DEFAULT '{}',
    actor        text
);
CREATE INDEX IF NOT EXISTS alert_events_alert_idx ON alert_events (alert_id, at);

-- The evaluator's cursors (how far each live rule family has read), so that a restart
-- continues where it stopped.
CREATE TABLE IF NOT EXISTS alert_cursors (
    name        text PRIMARY KEY,
    position    timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- What our robot receiver sent (or failed to send) to each channel, attempt by attempt:
-- failures are visible here and in `nzc alerts deliveries`.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    delivery_id   bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    channel       text NOT NULL,
    group_key     text NOT NULL,
    status        text NOT NULL,
    attempt       integer NOT NULL,
    ok            boolean NOT NULL,
    http_status   integer,
    error         text,
    bytes         integer NOT NULL,
    truncated     boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS alert_deliveries_at_idx ON alert_deliveries (at);

GRANT SELECT, INSERT, UPDATE ON alert_rules, alerts, alert_events, alert_cursors,
    alert_deliveries TO nzc_writer;
GRANT DELETE ON alert_rules TO nzc_writer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nzc_writer;
GRANT SELECT ON alert_rules, alerts, alert_events, alert_cursors, alert_deliveries
    TO nzc_reader;
