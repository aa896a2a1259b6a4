-- The transaction manager's ledger. One row per accepted request, holding the nonce allocated in the same
-- database transaction that accepted it; `tx_nonces` is the next nonce per (chain, sender), never a cache in
-- memory. `idempotency_key` makes a retried POST return the original request.
CREATE TABLE tx_nonces (
    chain_id   INTEGER NOT NULL,
    sender     TEXT    NOT NULL,
    next_nonce INTEGER NOT NULL,
    PRIMARY KEY (chain_id, sender)
);

CREATE TABLE tx_requests (
    id              TEXT    PRIMARY KEY,
    idempotency_key TEXT    UNIQUE,
    body_sha256     TEXT    NOT NULL,
    chain_id        INTEGER NOT NULL,
    signer          TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    nonce           INTEGER NOT NULL,
    to_address      TEXT,
    value           TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    gas_limit       INTEGER,
    speed           TEXT    NOT NULL,
    valid_until     TEXT,
    state           TEXT    NOT NULL,
    error           TEXT,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (chain_id, sender, nonce)
);
