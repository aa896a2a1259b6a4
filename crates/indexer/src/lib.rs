//! The indexer engine (roadmap 2): backfill and live follow over a `ChainSource`, the reorg window (pure),
//! and the commit / revert orchestration over a `Store`.
//!
//! Not built yet: the indexer issue fills this crate. `gemgate index` says so and exits non-zero.
