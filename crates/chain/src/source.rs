//! `EvmChain`: the `ChainSource` port over JSON-RPC, through the endpoint pool.

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use async_trait::async_trait;
use gemgate_domain::ports::{ChainSource, LogQuery, RawLog};
use gemgate_domain::{BlockRef, ChainError, ChainId, FinalityLevel};

use crate::classify::classify;
use crate::endpoints::{Endpoint, Endpoints, RetryPolicy};

/// One EVM chain behind one or more RPC endpoints.
#[derive(Debug)]
pub struct EvmChain {
    chain_id: ChainId,
    endpoints: Endpoints,
}

impl EvmChain {
    /// `urls` in order of preference, each with its redacted label for logs.
    pub fn new(chain_id: ChainId, urls: Vec<(url::Url, String)>, policy: RetryPolicy) -> Self {
        let endpoints = urls.into_iter().map(|(url, label)| Endpoint::http(url, label)).collect();
        Self { chain_id, endpoints: Endpoints::new(endpoints, policy) }
    }

    pub fn endpoint_labels(&self) -> Vec<&str> {
        self.endpoints.labels()
    }

    /// The chain id the first healthy endpoint reports (to check the configuration at start).
    pub async fn remote_chain_id(&self) -> Result<u64, ChainError> {
        self.endpoints
            .call(|e| async move { e.provider.get_chain_id().await.map_err(|err| classify(&e.label, &err, None)) })
            .await
    }
}

fn block_ref(endpoint: &Endpoint, block: &alloy::rpc::types::Block) -> Result<BlockRef, ChainError> {
    let header = &block.header;
    if header.hash.is_zero() {
        return Err(ChainError::InvalidResponse { endpoint: endpoint.label.clone(), message: "block without hash".into() });
    }
    Ok(BlockRef { number: header.number, hash: header.hash, parent_hash: header.parent_hash })
}

async fn fetch_block(endpoint: &Endpoint, tag: BlockNumberOrTag) -> Result<Option<BlockRef>, ChainError> {
    let block = endpoint.provider.get_block_by_number(tag).await.map_err(|e| classify(&endpoint.label, &e, None))?;
    block.as_ref().map(|b| block_ref(endpoint, b)).transpose()
}

fn raw_log(endpoint: &Endpoint, log: Log) -> Result<RawLog, ChainError> {
    let missing = |field: &str| ChainError::InvalidResponse {
        endpoint: endpoint.label.clone(),
        message: format!("log without {field} (a pending log?)"),
    };
    Ok(RawLog {
        address: log.address(),
        topics: log.topics().to_vec(),
        data: log.inner.data.data.clone(),
        block_number: log.block_number.ok_or_else(|| missing("blockNumber"))?,
        block_hash: log.block_hash.ok_or_else(|| missing("blockHash"))?,
        tx_hash: log.transaction_hash.ok_or_else(|| missing("transactionHash"))?,
        tx_index: log.transaction_index.ok_or_else(|| missing("transactionIndex"))?,
        log_index: log.log_index.ok_or_else(|| missing("logIndex"))?,
    })
}

#[async_trait]
impl ChainSource for EvmChain {
    fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    async fn head(&self, level: FinalityLevel) -> Result<Option<BlockRef>, ChainError> {
        let tag = match level {
            FinalityLevel::Latest => BlockNumberOrTag::Latest,
            FinalityLevel::Safe => BlockNumberOrTag::Safe,
            FinalityLevel::Finalized => BlockNumberOrTag::Finalized,
        };
        let result = self.endpoints.call(|e| fetch_block(e, tag)).await;
        match (level, result) {
            // Nodes without the tag refuse it (pre-merge chains, some L2s): the caller uses depth instead.
            (FinalityLevel::Safe | FinalityLevel::Finalized, Err(ChainError::Rpc { .. })) => Ok(None),
            (_, result) => result,
        }
    }

    async fn block(&self, number: u64) -> Result<Option<BlockRef>, ChainError> {
        self.endpoints.call(|e| fetch_block(e, BlockNumberOrTag::Number(number))).await
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<RawLog>, ChainError> {
        match query {
            LogQuery::Range { from, to, addresses } => {
                let (from, to) = (*from, *to);
                let filter = Filter::new().address(addresses.clone()).from_block(from).to_block(to);
                self.endpoints
                    .call(|e| {
                        let filter = filter.clone();
                        async move {
                            let logs =
                                e.provider.get_logs(&filter).await.map_err(|err| classify(&e.label, &err, Some((from, to))))?;
                            // A node that lags answers an empty list for blocks it does not have yet. Make sure
                            // it has the end of the range before trusting the answer.
                            if fetch_block(e, BlockNumberOrTag::Number(to)).await?.is_none() {
                                return Err(ChainError::BlockUnavailable { endpoint: e.label.clone(), number: to });
                            }
                            logs.into_iter().map(|log| raw_log(e, log)).collect()
                        }
                    })
                    .await
            }
            LogQuery::Block { hash, addresses } => {
                let filter = Filter::new().address(addresses.clone()).at_block_hash(*hash);
                self.endpoints
                    .call(|e| {
                        let filter = filter.clone();
                        async move {
                            let logs = e.provider.get_logs(&filter).await.map_err(|err| classify(&e.label, &err, None))?;
                            logs.into_iter().map(|log| raw_log(e, log)).collect()
                        }
                    })
                    .await
            }
        }
    }
}
