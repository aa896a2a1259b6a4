//! Contract-state snapshots: a view function read for many arguments at one pinned block, written as rows
//! with that block (`[[snapshots]]`, `gemgate snapshot run`).

use alloy_primitives::B256;
use serde::Serialize;
use serde_json::Value;

use crate::ChainId;

/// One call of a snapshot run and its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateRow {
    /// The call's arguments as canonical JSON: the row's key.
    pub key: String,
    pub args: Value,
    /// The decoded outputs (by name, or by position when unnamed); `None` when the call reverted.
    pub value: Option<Value>,
    /// Why the call reverted.
    pub reverted: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    pub rows: u64,
    /// View calls made (one per row).
    pub calls: u64,
    /// Round trips to the node (Multicall3 batches, or single calls).
    pub batches: u64,
    pub duration_ms: u64,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateRun {
    pub id: u64,
    pub name: String,
    pub table: String,
    pub chain_id: ChainId,
    pub block_number: u64,
    pub block_hash: B256,
    /// `running`, `complete` or `abandoned` (with `error`: a reorg of its block, an RPC failure, a stop).
    pub state: String,
    #[serde(flatten)]
    pub stats: RunStats,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A projection value that differs from what the contract's own view returns at the same block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub chain_id: ChainId,
    pub table: String,
    pub key: String,
    pub column: String,
    /// The event-derived value (JSON as the API shows it).
    pub projected: Value,
    pub on_chain: Value,
    pub block_number: u64,
    pub block_hash: B256,
    /// Whether the projection was corrected to the on-chain value.
    pub healed: bool,
}

/// A projection row as reconciliation reads it: its key, the value the view is called with, the compared
/// columns' values, and the block of its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedRow {
    pub key: String,
    pub argument: Value,
    pub values: Vec<Value>,
    pub updated_block: Option<u64>,
}

/// A recorded drift, as `GET /v1/drift` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRecord {
    pub id: u64,
    #[serde(flatten)]
    pub drift: Drift,
    pub detected_at: String,
}
