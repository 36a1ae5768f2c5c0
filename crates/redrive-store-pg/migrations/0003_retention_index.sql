-- Version 3: the retention sweep deletes a queue's messages by age through this index instead
-- of scanning the queue.
CREATE INDEX redrive_messages_age ON redrive_messages (queue_uid, sent_ms);
