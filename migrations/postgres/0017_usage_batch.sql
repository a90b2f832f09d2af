-- A usage row's model call was answered by a batch-inference job (1),
-- priced at the model's batch price, or on demand (0, as every older row).
ALTER TABLE soapgate_usage ADD COLUMN batch SMALLINT NOT NULL DEFAULT 0;
