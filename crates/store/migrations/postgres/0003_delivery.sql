-- Delivery: each sink's position in the outbox (every row up to it delivered or dead-lettered), whether it
-- is paused, and the messages a sink refused too often (dead letters, requeued by `gemgate sinks requeue`).
CREATE TABLE sink_positions (
    sink       TEXT    PRIMARY KEY,
    position   BIGINT  NOT NULL DEFAULT 0,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    sink         TEXT    NOT NULL,
    seq          BIGINT  NOT NULL,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    chain_id     BIGINT  NOT NULL,
    block_number BIGINT,
    ordering_key TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    payload      JSONB   NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT    NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, seq)
);
