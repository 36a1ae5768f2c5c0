-- Version 4: FIFO receive attempts (`ReceiveRequestAttemptId`). What an attempt handed out,
-- written in its claiming transaction, so a retry within the window reaching any server gets
-- the same messages and receipt handles. `messages` is a JSON array of
-- `[part, seq, receipt_token, visible_at_ms]`, in the order they were returned.
CREATE TABLE redrive_receive_attempts (
    queue_uid bigint NOT NULL,
    attempt_id text NOT NULL,
    expires_ms bigint NOT NULL,
    messages text NOT NULL,
    PRIMARY KEY (queue_uid, attempt_id)
);
