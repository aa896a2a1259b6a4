-- Who made each write through the API (an API key's name, jwt:<subject>, parse:<user id>), what it was
-- (method and path, never a body or a query string) and how it was answered.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  INTEGER NOT NULL,   -- Unix milliseconds
    caller TEXT    NOT NULL,
    method TEXT    NOT NULL,
    path   TEXT    NOT NULL,
    status INTEGER NOT NULL
);
