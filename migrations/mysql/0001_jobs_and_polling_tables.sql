-- soapgate schema v1 for MySQL 8 and MariaDB 10.6+: the internal job queue
-- and the legacy polling tables. Column names of soapgate_requests and
-- soapgate_results are a contract with batch jobs (docs/polling-tables.md):
-- never rename them. Job times are epoch milliseconds so lease arithmetic is
-- the same integer comparison on every backend.

CREATE TABLE soapgate_jobs (
    seq             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id              VARCHAR(64)  NOT NULL UNIQUE,
    idempotency_key VARCHAR(255) UNIQUE,
    source          VARCHAR(16)  NOT NULL DEFAULT 'api',
    service         VARCHAR(255) NOT NULL,
    operation       VARCHAR(255) NOT NULL,
    correlation_id  VARCHAR(255) NOT NULL,
    payload         LONGTEXT     NOT NULL,
    status          VARCHAR(16)  NOT NULL DEFAULT 'QUEUED',
    attempts        BIGINT       NOT NULL DEFAULT 0,
    run_after_ms    BIGINT       NOT NULL,
    lease_owner     VARCHAR(255),
    lease_until_ms  BIGINT,
    fencing_token   BIGINT       NOT NULL DEFAULT 0,
    last_error      TEXT,
    result_payload  LONGTEXT,
    fault_code      VARCHAR(255),
    fault_text      TEXT,
    model           VARCHAR(255),
    input_tokens    BIGINT,
    output_tokens   BIGINT,
    created_at_ms   BIGINT       NOT NULL,
    updated_at_ms   BIGINT       NOT NULL,
    CONSTRAINT soapgate_jobs_status CHECK (status IN ('QUEUED', 'RUNNING', 'DONE', 'FAILED')),
    INDEX soapgate_jobs_ready (status, run_after_ms),
    INDEX soapgate_jobs_lease (status, lease_until_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE soapgate_requests (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    correlation_id VARCHAR(255) NOT NULL,
    service        VARCHAR(255) NOT NULL,
    operation      VARCHAR(255) NOT NULL,
    payload        LONGTEXT     NOT NULL,
    tenant         VARCHAR(255),
    created_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    picked_up_at   DATETIME(6),
    picked_up_by   VARCHAR(255),
    job_id         VARCHAR(64),
    INDEX soapgate_requests_new (picked_up_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE soapgate_results (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    correlation_id VARCHAR(255) NOT NULL UNIQUE,
    status         VARCHAR(16)  NOT NULL,
    payload        LONGTEXT,
    fault_code     VARCHAR(255),
    fault_text     TEXT,
    model          VARCHAR(255),
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    created_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    completed_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT soapgate_results_status CHECK (status IN ('DONE', 'FAILED'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
