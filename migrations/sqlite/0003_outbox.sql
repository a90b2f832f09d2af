-- soapgate schema v3 for SQLite: the outbox for queue.kind = sqs. A job row
-- and its outbox row are written in one transaction; a relay sends outbox
-- rows to the request queue and deletes them once SQS has them. A row is
-- leased while it is being sent (available_at_ms moves forward), so a relay
-- that dies mid-send leaves it to be sent again: delivery is at least once.

CREATE TABLE soapgate_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT    NOT NULL,
    available_at_ms INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX soapgate_outbox_due ON soapgate_outbox (available_at_ms, id);
