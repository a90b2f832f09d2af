-- soapgate schema v4 for PostgreSQL: tenants. Jobs name the tenant they
-- run for; token budgets per tenant and period (shared by every instance);
-- one usage row per model call; the append-only audit trail. Times are
-- epoch milliseconds (UTC).

ALTER TABLE soapgate_jobs ADD COLUMN tenant VARCHAR(255);

-- period: 'YYYY-MM-DD' (a UTC day) or 'YYYY-MM' (a UTC month).
CREATE TABLE soapgate_budgets (
    tenant        VARCHAR(255) NOT NULL,
    period        VARCHAR(16)  NOT NULL,
    tokens        BIGINT       NOT NULL DEFAULT 0,
    updated_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (tenant, period)
);

CREATE TABLE soapgate_usage (
    id             BIGSERIAL PRIMARY KEY,
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
    correlation_id VARCHAR(255) NOT NULL
);
CREATE INDEX soapgate_usage_at ON soapgate_usage (at_ms, tenant);

CREATE TABLE soapgate_audit (
    id             BIGSERIAL PRIMARY KEY,
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
    request_text   TEXT,
    response_text  TEXT
);
CREATE INDEX soapgate_audit_at ON soapgate_audit (at_ms);

CREATE FUNCTION soapgate_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'soapgate_audit is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER soapgate_audit_append_only BEFORE UPDATE OR DELETE ON soapgate_audit
    FOR EACH ROW EXECUTE FUNCTION soapgate_audit_append_only();
