-- Version 2 (issue 17, the engine's PgBackend): a FIFO duplicate answers with the first
-- message's sequence number, so the deduplication row keeps it.
ALTER TABLE redrive_dedup ADD COLUMN seq bigint;
