-- Rebuilding projections from stored events (`gemgate replay`): the sender of the transactions whose events a
-- projection reads it from (a trade deal's creator) is kept with the event, so a rebuild needs no chain.
ALTER TABLE events ADD COLUMN tx_from TEXT;

-- The one rebuild in progress, if any: the projection tables it rebuilds and how many events there were.
CREATE TABLE rebuilds (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    tables       TEXT    NOT NULL,
    total        BIGINT  NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Where it has got to on each chain, committed with each chunk of its shadow tables; `finalized` is the
-- highest finalized block it has applied events with (changes above it are in replay_journal).
CREATE TABLE rebuild_positions (
    chain_id     BIGINT  PRIMARY KEY,
    block_number BIGINT  NOT NULL,
    log_index    BIGINT  NOT NULL,
    applied      BIGINT  NOT NULL,
    finalized    BIGINT  NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The shadow tables' undo journal, swapped in for `journal` with them.
CREATE TABLE replay_journal (
    seq          BIGSERIAL PRIMARY KEY,
    chain_id     BIGINT  NOT NULL,
    block_number BIGINT  NOT NULL,
    table_name   TEXT    NOT NULL,
    row_key      TEXT    NOT NULL,
    before       JSONB
);
CREATE INDEX replay_journal_block ON replay_journal (chain_id, block_number);

-- The snapshots (`gemgate snapshot import`) this database was created from: its projections stand on
-- events below that block that are not stored here, so a rebuild from the store is refused.
CREATE TABLE snapshot_imports (
    chain_id     BIGINT  PRIMARY KEY,
    block_number BIGINT  NOT NULL,
    block_hash   TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL
);

-- Contract-state snapshot runs (`[[snapshots]]`): the block every call of a run read, what it did, and how it
-- ended. Each snapshot's rows are in its own table (created at start), replaced whole when a run completes.
CREATE TABLE state_snapshot_runs (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT    NOT NULL,
    table_name   TEXT    NOT NULL,
    chain_id     BIGINT  NOT NULL,
    block_number BIGINT  NOT NULL,
    block_hash   TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    rows_written BIGINT  NOT NULL DEFAULT 0,
    calls        BIGINT  NOT NULL DEFAULT 0,
    batches      BIGINT  NOT NULL DEFAULT 0,
    duration_ms  BIGINT  NOT NULL DEFAULT 0,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
CREATE INDEX state_snapshot_runs_name ON state_snapshot_runs (name, id);

-- Hybrid reconciliation: a projection value the contract's own view contradicted at a finalized block, and
-- whether it was healed (corrected in the projection, in the same transaction).
CREATE TABLE drift (
    id           BIGSERIAL PRIMARY KEY,
    chain_id     BIGINT  NOT NULL,
    table_name   TEXT    NOT NULL,
    row_key      TEXT    NOT NULL,
    column_name  TEXT    NOT NULL,
    projected    JSONB,
    on_chain     JSONB,
    block_number BIGINT  NOT NULL,
    block_hash   TEXT    NOT NULL,
    healed       BOOLEAN NOT NULL,
    detected_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A refetch from the chain in progress (`gemgate replay --from-chain`): the next block of each chain, and the last.
CREATE TABLE refetch_positions (
    chain_id   BIGINT PRIMARY KEY,
    next_block BIGINT NOT NULL,
    last_block BIGINT NOT NULL
);
