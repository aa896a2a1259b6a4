//! The dispatcher (roadmap 3): one per configured sink, with its own cursor, filter, finality and ordering
//! key; publishes through the `Sink` port, retries with backoff, dead-letters after N attempts.
//!
//! Not built yet: the delivery issue fills this crate. `gemgate dispatch` says so and exits non-zero.
