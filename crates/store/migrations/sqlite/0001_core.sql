-- Core tables: events (the envelope, raw topics and data), the outbox, the reorg window, cursors, heads and
-- the undo journal of projection changes. Projection tables are created from their definitions at start.
CREATE TABLE cursors (
    chain_id     INTEGER PRIMARY KEY,
    block_number INTEGER NOT NULL,
    block_hash   TEXT    NOT NULL,
    parent_hash  TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE heads (
    chain_id   INTEGER PRIMARY KEY,
    latest     INTEGER NOT NULL,
    safe       INTEGER NOT NULL,
    finalized  INTEGER NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE blocks (
    chain_id    INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    parent_hash TEXT    NOT NULL,
    PRIMARY KEY (chain_id, number)
);

CREATE TABLE events (
    id           TEXT    NOT NULL,
    chain_id     INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash   TEXT    NOT NULL,
    tx_hash      TEXT    NOT NULL,
    tx_index     INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    address      TEXT    NOT NULL,
    contract     TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    args         TEXT,
    topics       TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    -- Chain order is the primary key: backfill appends in it, and reverts delete a range of it.
    PRIMARY KEY (chain_id, block_number, log_index)
);
-- The id needs no index of its own: it is derived from (chain id, block hash, log index), so the primary key
-- already makes it unique, and outbox rows point at their event by chain position (block_number, log_index).
CREATE INDEX events_address ON events (address, block_number);

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    chain_id     INTEGER NOT NULL,
    block_number INTEGER,
    ordering_key TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    -- NULL for a canonical chain event: its envelope is the events row with the same id (not stored twice).
    payload      TEXT,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE journal (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id     INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    table_name   TEXT    NOT NULL,
    row_key      TEXT    NOT NULL,
    before       TEXT
);
CREATE INDEX journal_block ON journal (chain_id, block_number);
