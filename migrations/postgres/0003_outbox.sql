-- soapgate schema v3 for PostgreSQL: the outbox for queue.kind = sqs. A job
-- row and its outbox row are written in one transaction; a relay sends
-- outbox rows to the request queue and deletes them once SQS has them. A row
-- is leased while it is being sent (available_at_ms moves forward), so a
-- relay that dies mid-send leaves it to be sent again: delivery is at least
-- once.

CREATE TABLE soapgate_outbox (
    id              BIGSERIAL   PRIMARY KEY,
    job_id          VARCHAR(64) NOT NULL,
    available_at_ms BIGINT      NOT NULL,
    attempts        BIGINT      NOT NULL DEFAULT 0,
    created_at_ms   BIGINT      NOT NULL
);
CREATE INDEX soapgate_outbox_due ON soapgate_outbox (available_at_ms, id);
