//! The indexer engine: follows one chain through a `ChainSource` and commits what it finds into a
//! `Store`, batch by batch, each batch one transaction (events, projection changes, outbox rows, window,
//! cursor). Backfill fetches wide log ranges concurrently and commits them strictly in order; near the tip
//! every block's parent hash is checked against the window, and a fork is reverted to the common ancestor
//! before the new branch is applied. It never reverts below the finalized head: it halts instead.
//!
//! The engine owns no sockets and reads no configuration; the binary builds it from settings.

mod engine;
mod error;
mod metrics;
pub mod refetch;
mod span;
mod window;

pub use engine::{Indexer, IndexerSettings, StepOutcome};
pub use error::IndexerError;
pub use metrics::{ChainLabel, IndexerMetrics};
pub use span::SpanController;
pub use window::{Link, link};
