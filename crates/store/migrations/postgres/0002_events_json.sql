-- An event's args and topics are written once by the indexer and read back whole: JSON keeps the text as
-- written (validated, not decomposed), which costs the server less per row than JSONB during backfill.
ALTER TABLE events ALTER COLUMN args TYPE JSON USING args::json;
ALTER TABLE events ALTER COLUMN topics TYPE JSON USING topics::json;
