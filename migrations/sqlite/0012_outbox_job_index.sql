-- The reconciler (queue.kind = sqs) looks for jobs that are QUEUED, or
-- RUNNING under a long expired lease, without an outbox row: this index
-- answers "has this job an outbox row" with one seek.
CREATE INDEX soapgate_outbox_job ON soapgate_outbox (job_id);
