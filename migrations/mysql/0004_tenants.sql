-- soapgate schema v4 for MySQL 8 and MariaDB 10.6+: tenants. Jobs name the
-- tenant they run for; token budgets per tenant and period (shared by every
-- instance); one usage row per model call; the append-only audit trail.
-- Times are epoch milliseconds (UTC).

ALTER TABLE soapgate_jobs ADD COLUMN tenant VARCHAR(255);

-- period: 'YYYY-MM-DD' (a UTC day) or 'YYYY-MM' (a UTC month).
CREATE TABLE soapgate_budgets (
    tenant        VARCHAR(255) NOT NULL,
    period        VARCHAR(16)  NOT NULL,
    tokens        BIGINT       NOT NULL DEFAULT 0,
    updated_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (tenant, period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE soapgate_usage (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms          BIGINT       NOT NULL,
    tenant         VARCHAR(255),
    service        VARCHAR(255) NOT NULL,
    operation      VARCHAR(255) NOT NULL,
    model          VARCHAR(255) NOT NULL,
    input_tokens   BIGINT       NOT NULL,
    output_tokens  BIGINT       NOT NULL,
    cost_micros    BIGINT       NOT NULL,
    latency_ms     BIGINT       NOT NULL,
    outcome        VARCHAR(64)  NOT NULL,
    correlation_id VARCHAR(255) NOT NULL,
    INDEX soapgate_usage_at (at_ms, tenant)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE soapgate_audit (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms          BIGINT       NOT NULL,
    tenant         VARCHAR(255),
    principal      VARCHAR(255),
    source         VARCHAR(16)  NOT NULL,
    service        VARCHAR(255) NOT NULL,
    operation      VARCHAR(255),
    correlation_id VARCHAR(255) NOT NULL,
    job_id         VARCHAR(64),
    outcome        VARCHAR(64)  NOT NULL,
    payload_sha256 CHAR(64),
    request_text   LONGTEXT,
    response_text  LONGTEXT,
    INDEX soapgate_audit_at (at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- soapgate only ever INSERTs into soapgate_audit. No trigger enforces
-- append-only here, unlike SQLite and PostgreSQL: with binary logging on,
-- CREATE TRIGGER needs SUPER (or log_bin_trust_function_creators), which
-- managed MySQL often withholds, and a migration that cannot run would stop
-- soapgate from starting. Grant soapgate's user INSERT and SELECT only on
-- this table instead (docs/tenants.md).
