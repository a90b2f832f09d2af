-- The request a job was recorded for, as a digest: the hex SHA-256 of its
-- payload, written with every new job. A call whose idempotency key (a
-- WS-Addressing MessageID, a mapping's idempotency_key) names an existing
-- job is that job's retry only when its payload has the same digest;
-- otherwise the key was reused for another request. Jobs recorded before
-- this column have none, and are not compared.
ALTER TABLE soapgate_jobs ADD COLUMN request_digest VARCHAR(64);
