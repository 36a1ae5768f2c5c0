-- Version 5: the minute history (docs/metrics.md, "Minute history") over a shared database.
-- One row per queue-minute. Every server adds its own counts of the minute to the counter
-- columns (an additive upsert, so servers never overwrite each other); the holder of the
-- `history` lease samples the gauges at the minute's end (NULL: not sampled that minute).
CREATE TABLE redrive_minute_history (
    queue_uid bigint NOT NULL,
    minute bigint NOT NULL,
    sent bigint NOT NULL DEFAULT 0,
    sent_bytes bigint NOT NULL DEFAULT 0,
    received bigint NOT NULL DEFAULT 0,
    deleted bigint NOT NULL DEFAULT 0,
    empty_receives bigint NOT NULL DEFAULT 0,
    deduplicated bigint NOT NULL DEFAULT 0,
    moved_to_dlq bigint NOT NULL DEFAULT 0,
    dead_letter_arrivals bigint NOT NULL DEFAULT 0,
    redriven_by_move_tasks bigint NOT NULL DEFAULT 0,
    redriven_by_replays bigint NOT NULL DEFAULT 0,
    visible bigint,
    not_visible bigint,
    delayed bigint,
    oldest_age_secs bigint,
    groups_with_inflight bigint,
    PRIMARY KEY (queue_uid, minute)
);
