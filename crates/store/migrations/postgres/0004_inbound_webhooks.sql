-- Inbound webhooks (Gemforce): each verified payload once, keyed by its id (the payload's "id" field, else
-- the SHA-256 of the body). The same transaction writes an outbox row, so sinks deliver it like an event.
CREATE TABLE inbound_webhooks (
    source      TEXT  NOT NULL,
    id          TEXT  NOT NULL,
    payload     JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
