//! Storage (roadmap 2): sqlx implementations of the `Store` port for SQLite (embedded default, WAL) and
//! Postgres, with per-backend migrations. One database transaction per committed batch: events, projection
//! changes, outbox rows and cursor together.
//!
//! Not built yet: the indexer issue fills this crate.
