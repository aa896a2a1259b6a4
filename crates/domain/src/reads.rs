//! What the API reads and what operators change about delivery, as values: event filters and pages, each
//! chain's progress, each sink's backlog, where a replay starts. The `ReadModel` and `DeliveryControl`
//! ports (`ports.rs`) speak these; the store crate implements them in SQL.

use alloy_primitives::{Address, B256};
use serde::Serialize;

use crate::{ChainEvent, ChainId};

/// Filters of `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub chain_id: Option<ChainId>,
    pub address: Option<Address>,
    pub event: Option<String>,
    pub from_block: Option<u64>,
    pub to_block: Option<u64>,
    /// Position to continue after: (chain id, block number, log index).
    pub after: Option<(ChainId, u64, u64)>,
    pub limit: u32,
}

/// A page of events and the cursor of the next page (absent on the last page).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub events: Vec<ChainEvent>,
    pub next: Option<String>,
}

/// One chain's progress.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    pub chain_id: ChainId,
    pub head: Option<u64>,
    pub indexed: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub indexed_hash: Option<B256>,
    pub safe: Option<u64>,
    pub finalized: Option<u64>,
    pub events: u64,
}

/// Where `sinks replay` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    Block {
        chain_id: Option<u64>,
        block: u64,
    },
    /// An RFC 3339 time, normalised to `YYYY-MM-DDTHH:MM:SS.mmmZ` (the stored form on SQLite).
    Time(String),
}

/// One sink's delivery state for `gemgate sinks list` and `GET /v1/status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkBacklog {
    #[serde(rename = "name")]
    pub sink: String,
    pub position: u64,
    pub paused: bool,
    /// Outbox rows after the sink's position (some may be filtered out or not final yet).
    pub backlog: u64,
    pub dead_letters: u64,
}
