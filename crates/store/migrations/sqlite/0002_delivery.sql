-- Delivery: each sink's position in the outbox (every row up to it delivered or dead-lettered), whether it
-- is paused, and the messages a sink refused too often (dead letters, requeued by `gemgate sinks requeue`).
CREATE TABLE sink_positions (
    sink       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL DEFAULT 0,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE dead_letters (
    sink         TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    chain_id     INTEGER NOT NULL,
    block_number INTEGER,
    ordering_key TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (sink, seq)
);
