-- GET /v1/transactions lists requests newest first, a page at a time, with (created_at, id) as the cursor.
CREATE INDEX tx_requests_created ON tx_requests (created_at, id);
