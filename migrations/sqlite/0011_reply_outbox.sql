-- The reply outbox for queue.kind = sqs: a finished job's reply waits here,
-- written before its request message is deleted, until the reply queue
-- accepts it. A row is leased while it is being sent (available_at_ms moves
-- forward) and deleted once SQS has it, so a reply is sent at least once.

CREATE TABLE soapgate_reply_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT    NOT NULL,
    queue_url       TEXT    NOT NULL,
    available_at_ms INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL
);
CREATE INDEX soapgate_reply_outbox_due ON soapgate_reply_outbox (available_at_ms, id);
