-- Job steps: an operation with several model calls runs them as steps,
-- some once per item of a list (`for_each`). Each finished step of an
-- async job keeps its result here, written only while the job is RUNNING
-- under the writer's fencing token, so a job re-claimed after its worker
-- died resumes at its first unfinished step and calls no finished step
-- again. `item` is the item's index, or -1 for a step that is not per
-- item; `result` is the step's answer as JSON. A (job, step, item) keeps
-- its first result: a second write of it changes nothing. Rows refer to
-- `soapgate_jobs.id` by value, like the outbox tables', and stay with
-- their job.
CREATE TABLE soapgate_job_steps (
    job_id        VARCHAR(64)  NOT NULL,
    step          VARCHAR(255) NOT NULL,
    item          BIGINT       NOT NULL,
    result        TEXT         NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (job_id, step, item)
);
