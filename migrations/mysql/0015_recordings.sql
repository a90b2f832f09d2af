-- Recordings: a sample of the calls of operations whose mapping says
-- `record:`, kept so a changed mapping or model can be replayed against
-- them (`soapgate replay`). Each row is written after its call answered,
-- with the redacted values already replaced. `kind` is `served` (the
-- answer the caller got) or `shadow` (a variant run beside it, with its
-- agreement with the served answer). Old rows go by age and by a cap on
-- their number (`[record]` in soapgate.toml).
CREATE TABLE soapgate_recordings (
    id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms            BIGINT       NOT NULL,
    service          VARCHAR(255) NOT NULL,
    operation        VARCHAR(255) NOT NULL,
    kind             VARCHAR(16)  NOT NULL,
    variant          VARCHAR(64),
    correlation_id   VARCHAR(255) NOT NULL,
    mapping_sha256   VARCHAR(64)  NOT NULL,
    request_xml      LONGTEXT     NOT NULL,
    converse_request LONGTEXT     NOT NULL,
    model_answer     LONGTEXT,
    response_xml     LONGTEXT,
    fault_code       VARCHAR(64),
    model            VARCHAR(255),
    input_tokens     BIGINT       NOT NULL,
    output_tokens    BIGINT       NOT NULL,
    latency_ms       BIGINT       NOT NULL,
    agreement        DOUBLE,
    INDEX soapgate_recordings_operation (service, operation, at_ms),
    INDEX soapgate_recordings_at (at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
