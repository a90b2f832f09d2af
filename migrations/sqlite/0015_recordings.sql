-- Recordings: a sample of the calls of operations whose mapping says
-- `record:`, kept so a changed mapping or model can be replayed against
-- them (`soapgate replay`). Each row is written after its call answered,
-- with the redacted values already replaced. `kind` is `served` (the
-- answer the caller got) or `shadow` (a variant run beside it, with its
-- agreement with the served answer). Old rows go by age and by a cap on
-- their number (`[record]` in soapgate.toml).
CREATE TABLE soapgate_recordings (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms            INTEGER NOT NULL,
    service          TEXT    NOT NULL,
    operation        TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    variant          TEXT,
    correlation_id   TEXT    NOT NULL,
    mapping_sha256   TEXT    NOT NULL,
    request_xml      TEXT    NOT NULL,
    converse_request TEXT    NOT NULL,
    model_answer     TEXT,
    response_xml     TEXT,
    fault_code       TEXT,
    model            TEXT,
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    latency_ms       INTEGER NOT NULL,
    agreement        REAL
);
CREATE INDEX soapgate_recordings_operation ON soapgate_recordings (service, operation, at_ms);
CREATE INDEX soapgate_recordings_at ON soapgate_recordings (at_ms);
