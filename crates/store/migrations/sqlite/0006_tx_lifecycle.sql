-- The transaction lifecycle. Every attempt at a request (nonce, fees, signed bytes, hash) is stored before
-- it is broadcast, so a crash leaves a known "maybe sent" attempt that is sent again as is. One worker per
-- (chain, sender) holds `tx_leases`; its fencing token must still be current for any of its writes to commit.
ALTER TABLE tx_requests ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';      -- api | raw (client-signed)
ALTER TABLE tx_requests ADD COLUMN ending TEXT;                             -- a no-op in flight: cancelled | expired
ALTER TABLE tx_requests ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;     -- bumped by every state change
ALTER TABLE tx_requests ADD COLUMN tx_hash TEXT;                            -- the attempt that was included
ALTER TABLE tx_requests ADD COLUMN block_number INTEGER;
ALTER TABLE tx_requests ADD COLUMN block_hash TEXT;
ALTER TABLE tx_requests ADD COLUMN receipt TEXT;                            -- JSON: status, gas used, fee paid
ALTER TABLE tx_requests ADD COLUMN valid_until_ms INTEGER;                       -- valid_until as Unix milliseconds

CREATE INDEX tx_requests_live ON tx_requests (chain_id, sender, state);

CREATE TABLE tx_attempts (
    request_id               TEXT    NOT NULL,
    attempt                  INTEGER NOT NULL,
    purpose                  TEXT    NOT NULL,  -- send | noop (cancel or expiry: a zero-value self-transfer)
    hash                     TEXT    NOT NULL,
    raw                      TEXT    NOT NULL,
    gas_limit                INTEGER NOT NULL,
    max_fee_per_gas          TEXT    NOT NULL,  -- the gas price on legacy chains
    max_priority_fee_per_gas TEXT,              -- NULL on legacy chains
    sent_ms                  INTEGER,           -- last broadcast, Unix milliseconds; NULL: not sent yet
    created_at               TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (request_id, attempt)
);
CREATE INDEX tx_attempts_hash ON tx_attempts (hash);

CREATE TABLE tx_leases (
    chain_id   INTEGER NOT NULL,
    sender     TEXT    NOT NULL,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (chain_id, sender)
);
