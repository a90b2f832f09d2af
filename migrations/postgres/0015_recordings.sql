-- Recordings: a sample of the calls of operations whose mapping says
-- `record:`, kept so a changed mapping or model can be replayed against
-- them (`soapgate replay`). Each row is written after its call answered,
-- with the redacted values already replaced. `kind` is `served` (the
-- answer the caller got) or `shadow` (a variant run beside it, with its
-- agreement with the served answer). Old rows go by age and by a cap on
-- their number (`[record]` in soapgate.toml).
CREATE TABLE soapgate_recordings (
    id               BIGSERIAL PRIMARY KEY,
    at_ms            BIGINT       NOT NULL,
    service          VARCHAR(255) NOT NULL,
    operation        VARCHAR(255) NOT NULL,
    kind             VARCHAR(16)  NOT NULL,
    variant          VARCHAR(64),
    correlation_id   VARCHAR(255) NOT NULL,
    mapping_sha256   VARCHAR(64)  NOT NULL,
    request_xml      TEXT         NOT NULL,
    converse_request TEXT         NOT NULL,
    model_answer     TEXT,
    response_xml     TEXT,
    fault_code       VARCHAR(64),
    model            VARCHAR(255),
    input_tokens     BIGINT       NOT NULL,
    output_tokens    BIGINT       NOT NULL,
    latency_ms       BIGINT       NOT NULL,
    agreement        DOUBLE PRECISION
);
CREATE INDEX soapgate_recordings_operation ON soapgate_recordings (service, operation, at_ms);
CREATE INDEX soapgate_recordings_at ON soapgate_recordings (at_ms);
