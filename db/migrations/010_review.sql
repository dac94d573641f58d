-- The reviewers' close (issue 12): API users, utility bills with history, the state of each
-- site-month, frozen snapshots (immutable), restatements and an append-only audit log with a
-- hash chain. Months are first days of the site's local month.

-- API users. The bearer token is "nzc_<token_key>_<secret>"; only an argon2 hash of the
-- secret is stored. A deleted user keeps its row (audit entries name it) and its tokens fail.
CREATE TABLE api_users (
    user_id     bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    role        text NOT NULL
        CHECK (role IN ('admin', 'reviewer', 'site_manager', 'facility_staff')),
    sites       text[] NOT NULL DEFAULT '{}',
    token_key   text NOT NULL UNIQUE,
    token_hash  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- Utility bills entered by people; a correction is a new row (history kept), the newest row
-- of (site, month, carrier) counts.
CREATE TABLE utility_bills (
    bill_id      bigserial PRIMARY KEY,
    site_id      text NOT NULL REFERENCES sites (site_id),
    month        date NOT NULL CHECK (extract(day FROM month) = 1),
    carrier      text NOT NULL,
    quantity     double precision NOT NULL CHECK (quantity >= 0),
    unit         text NOT NULL,
    amount_cny   double precision,
    reference    text,
    entered_by   text NOT NULL,
    entered_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX utility_bills_site_month_idx ON utility_bills (site_id, month, carrier, bill_id);

-- The state of a site-month: draft -> submitted -> verified, or submitted -> returned (with a
-- comment) -> submitted again. version = the snapshot version a verified month shows.
CREATE TABLE month_closes (
    site_id       text NOT NULL REFERENCES sites (site_id),
    month         date NOT NULL CHECK (extract(day FROM month) = 1),
    state         text NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'submitted', 'returned', 'verified')),
    version       integer NOT NULL DEFAULT 0,
    submitted_by  text,
    submitted_at  timestamptz,
    returned_by   text,
    returned_at   timestamptz,
    comment       text,
    verified_by   text,
    verified_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, month)
);

-- Frozen figures: one row per verified version, never changed or deleted. canonical is the
-- exact text whose SHA-256 is sha256 (sorted keys, no spaces, UTF-8).
CREATE TABLE close_snapshots (
    site_id       text NOT NULL,
    month         date NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    canonical     text NOT NULL,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    verified_by   text NOT NULL,
    verified_at   timestamptz NOT NULL,
    reason        text NOT NULL,
    audit_seq     bigint,
    PRIMARY KEY (site_id, month, version),
    FOREIGN KEY (site_id, month) REFERENCES month_closes (site_id, month)
);

-- Later data or factors for a frozen month: old vs new figures and why; a reviewer accepts
-- (a new snapshot version) or rejects.
CREATE TABLE restatements (
    restatement_id  bigserial PRIMARY KEY,
    site_id         text NOT NULL,
    month           date NOT NULL,
    from_version    integer NOT NULL,
    state           text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'accepted', 'rejected')),
    old_figures     jsonb NOT NULL,
    new_figures     jsonb NOT NULL,
    differences     jsonb NOT NULL,
    reason          text NOT NULL,
    new_canonical   text NOT NULL,
    new_sha256      text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    decided_by      text,
    decided_at      timestamptz,
    comment         text,
    FOREIGN KEY (site_id, month) REFERENCES month_closes (site_id, month)
);
-- at most one open restatement per month
CREATE UNIQUE INDEX restatements_one_open_idx ON restatements (site_id, month)
    WHERE state = 'open';

-- Append-only audit log; hash = SHA-256(prev_hash || canonical entry), written by
-- db.review.append_audit under an advisory lock; seq has no gaps.
CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    site_id     text,
    month       date,
    details     jsonb NOT NULL DEFAULT '{}',
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE
);
CREATE INDEX audit_log_site_idx ON audit_log (site_id, seq);

CREATE FUNCTION nzc_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION nzc_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION nzc_refuse_change();
CREATE TRIGGER close_snapshots_immutable BEFORE UPDATE OR DELETE ON close_snapshots
    FOR EACH ROW EXECUTE FUNCTION nzc_refuse_change();
CREATE TRIGGER close_snapshots_no_truncate BEFORE TRUNCATE ON close_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION nzc_refuse_change();

-- Privileges: the API connects as nzc_writer. The default privileges of 002 grant it
-- INSERT/UPDATE on new tables; take UPDATE (and DELETE, TRUNCATE) back where rows are frozen.
GRANT SELECT, INSERT, UPDATE ON api_users, utility_bills, month_closes, restatements
    TO nzc_writer;
GRANT SELECT, INSERT ON audit_log, close_snapshots TO nzc_writer;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, close_snapshots FROM nzc_writer, nzc_reader;
REVOKE UPDATE, DELETE, TRUNCATE ON utility_bills FROM nzc_writer;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nzc_writer;
GRANT SELECT ON utility_bills, month_closes, close_snapshots, restatements, audit_log
    TO nzc_reader;
-- token hashes are not for readers
REVOKE ALL ON api_users FROM nzc_reader;
-- denominators are entered through the API by site managers
GRANT SELECT, INSERT, UPDATE ON denominators TO nzc_writer;
