-- A claim takes the queued job due first, `ORDER BY run_after_ms, seq`:
-- with seq in the index that is one seek, however deep the queue.
-- (SQLite and InnoDB append the primary key to every secondary index, so
-- their `soapgate_jobs_ready` index already serves that order.)
CREATE INDEX soapgate_jobs_due ON soapgate_jobs (status, run_after_ms, seq);
DROP INDEX soapgate_jobs_ready;
