-- The step of a multi-step operation a usage row's model call was made
-- for (NULL for a single-call operation, as every older row), and the
-- steps an audited call ran (NULL for a single-call operation). Adding a
-- column changes no audit row: the trail stays append-only.
ALTER TABLE soapgate_usage ADD COLUMN step VARCHAR(255);
ALTER TABLE soapgate_audit ADD COLUMN steps TEXT;
