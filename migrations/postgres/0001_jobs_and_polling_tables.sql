-- soapgate schema v1 for PostgreSQL: the internal job queue and the legacy
-- polling tables. Column names of soapgate_requests and soapgate_results are
-- a contract with batch jobs (docs/polling-tables.md): never rename them.
-- Job times are epoch milliseconds so lease arithmetic is the same integer
-- comparison on every backend.

CREATE TABLE soapgate_jobs (
    seq             BIGSERIAL PRIMARY KEY,
    id              VARCHAR(64)  NOT NULL UNIQUE,
    idempotency_key VARCHAR(255) UNIQUE,
    source          VARCHAR(16)  NOT NULL DEFAULT 'api',
    service         VARCHAR(255) NOT NULL,
    operation       VARCHAR(255) NOT NULL,
    correlation_id  VARCHAR(255) NOT NULL,
    payload         TEXT         NOT NULL,
    status          VARCHAR(16)  NOT NULL DEFAULT 'QUEUED'
                    CHECK (status IN ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    attempts        BIGINT       NOT NULL DEFAULT 0,
    run_after_ms    BIGINT       NOT NULL,
    lease_owner     VARCHAR(255),
    lease_until_ms  BIGINT,
    fencing_token   BIGINT       NOT NULL DEFAULT 0,
    last_error      TEXT,
    result_payload  TEXT,
    fault_code      VARCHAR(255),
    fault_text      TEXT,
    model           VARCHAR(255),
    input_tokens    BIGINT,
    output_tokens   BIGINT,
    created_at_ms   BIGINT       NOT NULL,
    updated_at_ms   BIGINT       NOT NULL
);
CREATE INDEX soapgate_jobs_ready ON soapgate_jobs (status, run_after_ms);
CREATE INDEX soapgate_jobs_lease ON soapgate_jobs (status, lease_until_ms);

CREATE TABLE soapgate_requests (
    id             BIGSERIAL PRIMARY KEY,
    correlation_id VARCHAR(255) NOT NULL,
    service        VARCHAR(255) NOT NULL,
    operation      VARCHAR(255) NOT NULL,
    payload        TEXT         NOT NULL,
    tenant         VARCHAR(255),
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    picked_up_at   TIMESTAMPTZ,
    picked_up_by   VARCHAR(255),
    job_id         VARCHAR(64)
);
CREATE INDEX soapgate_requests_new ON soapgate_requests (id) WHERE picked_up_at IS NULL;

CREATE TABLE soapgate_results (
    id             BIGSERIAL PRIMARY KEY,
    correlation_id VARCHAR(255) NOT NULL UNIQUE,
    status         VARCHAR(16)  NOT NULL CHECK (status IN ('DONE', 'FAILED')),
    payload        TEXT,
    fault_code     VARCHAR(255),
    fault_text     TEXT,
    model          VARCHAR(255),
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ  NOT NULL DEFAULT now()
);
