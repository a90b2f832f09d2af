-- soapgate schema v1 for SQLite: the internal job queue and the legacy
-- polling tables. Column names of soapgate_requests and soapgate_results are
-- a contract with batch jobs (docs/polling-tables.md): never rename them.
-- Job times are epoch milliseconds so lease arithmetic is the same integer
-- comparison on every backend.

CREATE TABLE soapgate_jobs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    idempotency_key TEXT    UNIQUE,
    source          TEXT    NOT NULL DEFAULT 'api',
    service         TEXT    NOT NULL,
    operation       TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'QUEUED'
                    CHECK (status IN ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_after_ms    INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    fencing_token   INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    result_payload  TEXT,
    fault_code      TEXT,
    fault_text      TEXT,
    model           TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX soapgate_jobs_ready ON soapgate_jobs (status, run_after_ms);
CREATE INDEX soapgate_jobs_lease ON soapgate_jobs (status, lease_until_ms);

CREATE TABLE soapgate_requests (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT NOT NULL,
    service        TEXT NOT NULL,
    operation      TEXT NOT NULL,
    payload        TEXT NOT NULL,
    tenant         TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    picked_up_at   TEXT,
    picked_up_by   TEXT,
    job_id         TEXT
);
CREATE INDEX soapgate_requests_new ON soapgate_requests (picked_up_at, id);

CREATE TABLE soapgate_results (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL CHECK (status IN ('DONE', 'FAILED')),
    payload        TEXT,
    fault_code     TEXT,
    fault_text     TEXT,
    model          TEXT,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    completed_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
