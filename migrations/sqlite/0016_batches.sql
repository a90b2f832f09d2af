-- Batch inference: jobs of an operation with `batch:` wait together and
-- go to the model as one batch-inference job. A batch row is written, in
-- the same transaction that leases its jobs to it, before anything is
-- sent; each later step (records uploaded, the service's job created and
-- its ARN kept, polled, answers written) moves `status` on, fenced by
-- `fencing_token` like a job, so a process that dies at any step leaves
-- a row another process resumes from. The row's id is also the
-- clientRequestToken of the service's job: creating it twice makes one.
-- status: CUT, UPLOADED, SUBMITTED, then DONE or FAILED.
CREATE TABLE soapgate_batches (
    id             TEXT PRIMARY KEY,
    service        TEXT NOT NULL,
    operation      TEXT NOT NULL,
    model          TEXT NOT NULL,
    status         VARCHAR(16) NOT NULL,
    records        INTEGER NOT NULL,
    input_uri      TEXT,
    output_uri     TEXT,
    job_arn        TEXT,
    polls          INTEGER NOT NULL DEFAULT 0,
    next_step_ms   INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    fencing_token  INTEGER NOT NULL DEFAULT 0,
    answered       INTEGER NOT NULL DEFAULT 0,
    returned       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);
CREATE INDEX soapgate_batches_open ON soapgate_batches (status, next_step_ms);
-- The batch a job was sent in. It stays set when the job comes back to be
-- run on demand, so a job is never batched twice.
ALTER TABLE soapgate_jobs ADD COLUMN batch_id TEXT;
CREATE INDEX soapgate_jobs_batch ON soapgate_jobs (batch_id);
