-- An event's outbox row names its log index too, so a dispatcher finds the event by its full primary key
-- (chain id, block number, log index) instead of scanning the block's events for the id.
ALTER TABLE outbox ADD COLUMN log_index INTEGER;
UPDATE outbox SET log_index = (
    SELECT e.log_index FROM events e
    WHERE e.chain_id = outbox.chain_id AND e.block_number = outbox.block_number AND e.id = outbox.id
) WHERE payload IS NULL;
