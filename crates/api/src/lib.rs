//! The HTTP API (roadmap 5): `/v1` resources, auth by scoped keys, OpenAPI, the live stream, view calls.
//!
//! Not built yet: the indexer and API issues fill this crate. `gemgate serve` says so and exits non-zero.
