-- The transaction manager's ledger. One row per accepted request, holding the nonce allocated in the same
-- database transaction that accepted it; `tx_nonces` is the next nonce per (chain, sender), never a cache in
-- memory. `idempotency_key` makes a retried POST return the original request.
CREATE TABLE tx_nonces (
    chain_id   BIGINT NOT NULL,
    sender     TEXT   NOT NULL,
    next_nonce BIGINT NOT NULL,
    PRIMARY KEY (chain_id, sender)
);

CREATE TABLE tx_requests (
    id              TEXT   PRIMARY KEY,
    idempotency_key TEXT   UNIQUE,
    body_sha256     TEXT   NOT NULL,
    chain_id        BIGINT NOT NULL,
    signer          TEXT   NOT NULL,
    sender          TEXT   NOT NULL,
    nonce           BIGINT NOT NULL,
    to_address      TEXT,
    value           TEXT   NOT NULL,
    data            TEXT   NOT NULL,
    gas_limit       BIGINT,
    speed           TEXT   NOT NULL,
    valid_until     TIMESTAMPTZ,
    state           TEXT   NOT NULL,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (chain_id, sender, nonce)
);
