-- The ERC-2771 relayer. `relay_requests`: every user request a transaction relays, written in the database
-- transaction that accepts it (the digest is the EIP-712 hash the user signed: one row, so one transaction,
-- per signed request). `relay_quotas`: the relayer's quotas as counters per bucket and window, charged with
-- a conditional upsert so concurrent requests on any replica never pass a limit.
CREATE TABLE relay_requests (
    digest     TEXT    PRIMARY KEY,
    tx_id      TEXT    NOT NULL REFERENCES tx_requests (id),
    position   BIGINT NOT NULL,
    relayer    TEXT    NOT NULL,
    meta_from  TEXT    NOT NULL,
    meta_to    TEXT    NOT NULL,
    meta_nonce TEXT    NOT NULL,
    deadline   BIGINT NOT NULL
);
CREATE INDEX relay_requests_tx ON relay_requests (tx_id, position);
CREATE INDEX relay_requests_from ON relay_requests (meta_from);

CREATE TABLE relay_quotas (
    bucket       TEXT    NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
