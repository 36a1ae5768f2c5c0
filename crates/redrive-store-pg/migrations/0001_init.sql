-- Redrive shared-database schema, version 1 (ADR 0002). Plain PostgreSQL that YugabyteDB
-- also runs: no extensions, no advisory locks, no LISTEN/NOTIFY dependence.

-- The database's clock in epoch milliseconds, plus an offset that only tests move
-- (`PgStore::advance_clock`). Every deadline compares against this, never a server's clock.
CREATE TABLE redrive_clock (
    id int PRIMARY KEY CHECK (id = 1),
    offset_ms bigint NOT NULL
);
INSERT INTO redrive_clock VALUES (1, 0);
CREATE FUNCTION redrive_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
         + (SELECT offset_ms FROM redrive_clock WHERE id = 1)
$$;

CREATE TABLE redrive_queues (
    uid bigserial PRIMARY KEY,
    region text NOT NULL,
    name text NOT NULL,
    fifo boolean NOT NULL,
    partitions smallint NOT NULL CHECK (partitions BETWEEN 1 AND 256),
    attributes jsonb NOT NULL,
    created_ms bigint NOT NULL,
    UNIQUE (region, name)
);

CREATE SEQUENCE redrive_message_seq;

-- One row per message. A standard queue's messages are spread over `partitions` by `seq`; a
-- receive claims inside one partition at a time, starting at a random one.
CREATE TABLE redrive_messages (
    queue_uid bigint NOT NULL,
    part smallint NOT NULL,
    seq bigint NOT NULL,
    visible_at_ms bigint NOT NULL,
    message_id uuid NOT NULL,
    group_id text,
    body bytea NOT NULL,
    attributes bytea NOT NULL,
    receive_count int NOT NULL DEFAULT 0,
    receipt_token bigint NOT NULL DEFAULT 0,
    sent_ms bigint NOT NULL,
    first_received_ms bigint,
    -- Set by the DLQ move (the ARN of the queue it came from, and when).
    dead_letter_source text,
    dead_lettered_ms bigint,
    PRIMARY KEY (queue_uid, part, seq)
);
CREATE INDEX redrive_messages_ready ON redrive_messages (queue_uid, part, visible_at_ms, seq);
CREATE INDEX redrive_messages_group ON redrive_messages (queue_uid, group_id, seq)
    WHERE group_id IS NOT NULL;

-- FIFO message groups: a group is held by its in-flight messages until `locked_until_ms`,
-- across transactions and servers (a column, not a row lock).
CREATE TABLE redrive_fifo_groups (
    queue_uid bigint NOT NULL,
    group_id text NOT NULL,
    locked_until_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_uid, group_id)
);

-- FIFO deduplication: one row per (queue, id), reusable once expired.
CREATE TABLE redrive_dedup (
    queue_uid bigint NOT NULL,
    dedup_key text NOT NULL,
    expires_ms bigint NOT NULL,
    message_id uuid NOT NULL,
    PRIMARY KEY (queue_uid, dedup_key)
);

-- Background work runs under a lease: one holder per name until `expires_ms`.
CREATE TABLE redrive_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_ms bigint NOT NULL
);

-- Extension state (move-task and replay progress, schedules, history, alerts) as the embedded
-- store's documents; a step's progress is written in the transaction of its moves.
CREATE TABLE redrive_documents (
    kind text NOT NULL,
    key text NOT NULL CHECK (length(key) <= 1024),
    value jsonb NOT NULL,
    PRIMARY KEY (kind, key)
);
