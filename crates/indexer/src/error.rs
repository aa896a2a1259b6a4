//! Indexer errors: transient ones (the chain or the database is unavailable) are retried by `run`;
//! fatal ones stop the chain with a message that says what an operator must do.

use gemgate_domain::{ChainError, ChainId, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("chain {chain_id}: {source}")]
    Chain {
        chain_id: ChainId,
        #[source]
        source: ChainError,
    },
    #[error("chain {chain_id}: database: {source}")]
    Store {
        chain_id: ChainId,
        #[source]
        source: StoreError,
    },
    /// A reorg reaches below the finalized head (or below the window the store still has): gemgate does not
    /// overwrite finalized data. Inspect the chain and the node; `gemgate replay` rebuilds from chain data.
    #[error(
        "chain {chain_id}: reorg below finality: block {block} changed but everything at or below {finalized} is final; indexing of this chain is halted"
    )]
    ReorgBelowFinality { chain_id: ChainId, block: u64, finalized: u64 },
    /// The node reports another chain id than configured.
    #[error("chain {chain_id}: the RPC endpoint serves chain {actual}")]
    WrongChain { chain_id: ChainId, actual: u64 },
}

impl IndexerError {
    /// Whether `run` should wait and try the step again.
    /// A write refused because another process holds the chain's lease now.
    pub fn is_fenced(&self) -> bool {
        matches!(self, IndexerError::Store { source: StoreError::Fenced { .. }, .. })
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            IndexerError::Chain { source, .. } => {
                source.is_retryable() || matches!(source, ChainError::InvalidResponse { .. })
            }
            IndexerError::Store { source, .. } => {
                source.is_retryable() || matches!(source, StoreError::Fenced { .. })
            }
            _ => false,
        }
    }
}
