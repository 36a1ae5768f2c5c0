-- When the current receive handed the message out (NULL until received): the 12-hour total
-- of ChangeMessageVisibility counts from it, as on the embedded store.
ALTER TABLE redrive_messages ADD COLUMN received_ms bigint;
