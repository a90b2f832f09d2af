-- soapgate schema v4 for SQLite: tenants. Jobs name the tenant they run
-- for; token budgets per tenant and period (shared by every instance);
-- one usage row per model call; the append-only audit trail. Times are
-- epoch milliseconds (UTC).

ALTER TABLE soapgate_jobs ADD COLUMN tenant TEXT;

-- period: 'YYYY-MM-DD' (a UTC day) or 'YYYY-MM' (a UTC month).
CREATE TABLE soapgate_budgets (
    tenant        TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    tokens        INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, period)
);

CREATE TABLE soapgate_usage (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    tenant         TEXT,
    service        TEXT    NOT NULL,
    operation      TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_micros    INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL
);
CREATE INDEX soapgate_usage_at ON soapgate_usage (at_ms, tenant);

CREATE TABLE soapgate_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    tenant         TEXT,
    principal      TEXT,
    source         TEXT    NOT NULL,
    service        TEXT    NOT NULL,
    operation      TEXT,
    correlation_id TEXT    NOT NULL,
    job_id         TEXT,
    outcome        TEXT    NOT NULL,
    payload_sha256 TEXT,
    request_text   TEXT,
    response_text  TEXT
);
CREATE INDEX soapgate_audit_at ON soapgate_audit (at_ms);

CREATE TRIGGER soapgate_audit_no_update BEFORE UPDATE ON soapgate_audit
BEGIN SELECT RAISE(ABORT, 'soapgate_audit is append-only'); END;
CREATE TRIGGER soapgate_audit_no_delete BEFORE DELETE ON soapgate_audit
BEGIN SELECT RAISE(ABORT, 'soapgate_audit is append-only'); END;
