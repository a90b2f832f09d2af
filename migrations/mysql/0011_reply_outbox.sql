-- The reply outbox for queue.kind = sqs: a finished job's reply waits here,
-- written before its request message is deleted, until the reply queue
-- accepts it. A row is leased while it is being sent (available_at_ms moves
-- forward) and deleted once SQS has it, so a reply is sent at least once.

CREATE TABLE soapgate_reply_outbox (
    id              BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id          VARCHAR(64) NOT NULL,
    queue_url       TEXT        NOT NULL,
    available_at_ms BIGINT      NOT NULL,
    attempts        BIGINT      NOT NULL DEFAULT 0,
    created_at_ms   BIGINT      NOT NULL,
    INDEX soapgate_reply_outbox_due (available_at_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
