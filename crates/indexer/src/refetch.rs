//! Re-fetching and re-decoding stored events from the chain (`gemgate replay --from-chain`): the configured
//! contracts' logs of a block range fetched again, decoded with the ABIs configured now (the senders filled
//! where a projection needs them, as in indexing), and handed to the store, which puts them in place of the
//! stored events of those blocks. Range after range, each its own transaction with its position, so a killed
//! refetch resumes at the range it was in.

use std::sync::Arc;

use alloy_primitives::{Address, B256};
use gemgate_domain::ports::{ChainSource, EventRefresh, LogQuery};
use gemgate_domain::{ChainError, ChainId};
use gemgate_projections::Decoder;

use crate::IndexerError;

/// What a refetch reads and where it writes.
pub struct Refetch {
    pub chain_id: ChainId,
    pub source: Arc<dyn ChainSource>,
    pub decoder: Arc<Decoder>,
    /// Events (by topic0) whose transaction sender projections read.
    pub sender_topics: Vec<B256>,
    pub addresses: Vec<Address>,
    pub store: Arc<dyn EventRefresh>,
    /// Blocks per `eth_getLogs` (halved when the node refuses a range).
    pub span: u64,
}

impl std::fmt::Debug for Refetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refetch")
            .field("chain_id", &self.chain_id)
            .field("addresses", &self.addresses)
            .finish()
    }
}

/// How far a refetch has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefetchProgress {
    pub chain_id: ChainId,
    pub block: u64,
    pub last: u64,
    /// Stored events decoded again.
    pub updated: u64,
    /// Events that were not stored before.
    pub inserted: u64,
}

impl Refetch {
    /// Refetches blocks `from..=to` (or, when an earlier refetch was interrupted, from where it stopped).
    pub async fn run(
        &self,
        from: u64,
        to: u64,
        mut progress: impl FnMut(&RefetchProgress) + Send,
    ) -> Result<RefetchProgress, IndexerError> {
        let chain_id = self.chain_id;
        let store_err = |source| IndexerError::Store { chain_id, source };
        let chain_err = |source| IndexerError::Chain { chain_id, source };
        let (mut next, last) = match self.store.refetch_position(chain_id).await.map_err(store_err)? {
            Some(resumed) => resumed,
            None => (from, to),
        };
        let mut state = RefetchProgress { chain_id, last, ..Default::default() };
        let mut span = self.span.max(1);
        while next <= last {
            let end = next.saturating_add(span - 1).min(last);
            let query = LogQuery::Range { from: next, to: end, addresses: self.addresses.clone() };
            let logs = match self.source.logs(&query).await {
                Ok(logs) => logs,
                Err(ChainError::RangeTooLarge { .. }) if span > 1 => {
                    span /= 2;
                    continue;
                }
                Err(e) => return Err(chain_err(e)),
            };
            let mut events: Vec<_> = logs.iter().map(|log| self.decoder.decode(chain_id, log)).collect();
            crate::engine::fill_senders(self.source.as_ref(), &self.sender_topics, &mut events)
                .await
                .map_err(chain_err)?;
            let (updated, inserted) =
                self.store.refresh_events(chain_id, next, end, last, &events).await.map_err(store_err)?;
            state.updated += updated;
            state.inserted += inserted;
            state.block = end;
            progress(&state);
            next = end + 1;
        }
        self.store.finish_refetch(chain_id).await.map_err(store_err)?;
        Ok(state)
    }
}
