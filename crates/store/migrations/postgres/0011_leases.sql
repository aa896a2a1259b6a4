-- Leases for running several processes on one database: a chain's indexer, a sink's dispatcher, a signer's
-- transaction worker, and each process's heartbeat. A write made under a lease checks (and row-locks) the
-- lease's fencing token in its own transaction, so a new holder's takeover waits for it, and an old holder's
-- late write after a takeover is refused. The transaction workers' leases (tx_leases) move here.
CREATE TABLE leases (
    role        TEXT    NOT NULL,   -- process | indexer | sink | signer
    name        TEXT    NOT NULL,   -- holder name | chain id | sink name | chain_id/address
    holder      TEXT    NOT NULL,
    token       BIGINT  NOT NULL,   -- fencing token: raised on every change of holder
    acquired_ms BIGINT  NOT NULL,   -- Unix milliseconds
    renewed_ms  BIGINT  NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    detail      TEXT,               -- a process lease: the parts it runs
    PRIMARY KEY (role, name)
);

INSERT INTO leases (role, name, holder, token, acquired_ms, renewed_ms, expires_ms)
    SELECT 'signer', chain_id || '/' || sender, holder, token, 0, 0, expires_ms FROM tx_leases;
DROP TABLE tx_leases;
