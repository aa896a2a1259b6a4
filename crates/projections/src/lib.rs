//! Projections: how decoded events become rows in SQL tables, reversibly.
//!
//! `decode` turns raw logs into event envelopes, dispatching on topic0 against the ABIs of each contract
//! (never on names: two Gemforce facets define different `ClaimTopicAdded` events). A `Projection` reacts
//! to events by reading and writing rows through `Rows`, an overlay that loads each row once per batch,
//! journals the row's before image once per block (above finality), and hands the store the final
//! writes. Undoing a reorg is then generic: restore the journaled before images, newest first.
//!
//! This crate does no I/O of its own; the store supplies a `RowLoader` inside its transaction.

pub mod decode;
pub mod gemforce;
mod rows;

use std::sync::Arc;

use async_trait::async_trait;
use gemgate_domain::ChainEvent;

pub use decode::{ContractAbi, Decoder};
pub use rows::{Cell, Column, ColumnKind, JournalEntry, Row, RowLoader, RowWrite, Rows, TableDef};

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("event {event} ({id}): argument {argument} missing or malformed")]
    BadArgument { event: String, id: String, argument: String },
    #[error("loading a row failed: {0}")]
    Load(#[from] gemgate_domain::StoreError),
}

/// A set of tables kept up to date from events.
#[async_trait]
pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static TableDef];
    /// Applies one canonical event. Only `rows` may be used to read or change state.
    async fn apply(&self, event: &ChainEvent, rows: &mut Rows<'_>) -> Result<(), ProjectionError>;
}

/// The projections a store maintains.
#[derive(Clone, Default)]
pub struct ProjectionSet {
    projections: Vec<Arc<dyn Projection>>,
}

impl std::fmt::Debug for ProjectionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.projections.iter().map(|p| p.name())).finish()
    }
}

impl ProjectionSet {
    pub fn new(projections: Vec<Arc<dyn Projection>>) -> Self {
        Self { projections }
    }

    /// The built-in Gemforce projections, over every contract.
    pub fn gemforce() -> Self {
        Self::new(vec![Arc::new(gemforce::Gemforce::new())])
    }

    /// The built-in Gemforce projections, over these (chain id, address) contracts only.
    pub fn gemforce_for(contracts: impl IntoIterator<Item = (u64, alloy_primitives::Address)>) -> Self {
        Self::new(vec![Arc::new(gemforce::Gemforce::for_contracts(contracts))])
    }

    pub fn tables(&self) -> Vec<&'static TableDef> {
        self.projections.iter().flat_map(|p| p.tables().iter().copied()).collect()
    }

    pub fn table(&self, name: &str) -> Option<&'static TableDef> {
        self.tables().into_iter().find(|t| t.name == name)
    }

    /// Applies every projection to every event, in order. An event whose arguments a projection cannot
    /// read is logged and left out of that projection (it is still stored); a failure to load a row aborts.
    pub async fn apply_all(&self, events: &[ChainEvent], rows: &mut Rows<'_>) -> Result<(), ProjectionError> {
        for event in events {
            rows.at_block(event.block_number);
            for projection in &self.projections {
                match projection.apply(event, rows).await {
                    Ok(()) => {}
                    Err(error @ ProjectionError::BadArgument { .. }) => {
                        tracing::error!(projection = projection.name(), %error, "event skipped by projection");
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }
}
