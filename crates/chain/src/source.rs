//! `EvmChain`: the `ChainSource` port over JSON-RPC, through the endpoint pool.
//!
//! A node that is merely behind (lagging, syncing, one backend of a load balancer) is not a reorg: the
//! latest head is the highest any endpoint reports, each endpoint's own head is remembered, requests
//! about a block go first to endpoints that have seen it, and "I do not have that block" is a retryable
//! error that moves the request to another endpoint instead of an answer.

use std::sync::Arc;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use async_trait::async_trait;
use gemgate_domain::ports::{ChainSource, LogQuery, RawLog};
use gemgate_domain::{BlockRef, ChainError, ChainId, FinalityLevel, Header};

use crate::classify::classify;
use crate::endpoints::{Endpoint, Endpoints, RetryPolicy};
use crate::metrics::RpcMetrics;

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

    /// Counts this chain's calls in `metrics`.
    pub fn with_metrics(mut self, metrics: RpcMetrics) -> Self {
        self.endpoints = self.endpoints.with_metrics(self.chain_id, metrics);
        self
    }

    pub fn endpoint_labels(&self) -> Vec<&str> {
        self.endpoints.labels()
    }

    /// The chain id the endpoints report (to check the configuration at start).
    pub async fn remote_chain_id(&self) -> Result<u64, ChainError> {
        self.endpoints
            .call("eth_chainId", 0, |e| async move {
                e.provider.get_chain_id().await.map_err(|err| classify(&e.label, &err, None))
            })
            .await
    }

    /// `eth_call` at the latest block (the Diamond loupe, view calls).
    pub async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.call_at(to, data, None).await
    }

    /// `eth_call` at a block (`None`: the latest). A node that has pruned that block's state refuses.
    pub async fn call_at(&self, to: Address, data: Bytes, block: Option<u64>) -> Result<Bytes, ChainError> {
        let request = TransactionRequest::default().to(to).input(data.into());
        let at = block.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
        self.endpoints
            .call("eth_call", block.unwrap_or(0), |e| {
                let request = request.clone();
                async move {
                    e.provider
                        .call(request)
                        .block(at.into())
                        .await
                        .map_err(|err| classify(&e.label, &err, None))
                }
            })
            .await
    }
}

fn header_of(endpoint: &Endpoint, block: &alloy::rpc::types::Block) -> Result<Header, ChainError> {
    let header = &block.header;
    if header.hash.is_zero() {
        return Err(ChainError::InvalidResponse {
            endpoint: endpoint.label.clone(),
            message: "block without hash".into(),
        });
    }
    let block = BlockRef { number: header.number, hash: header.hash, parent_hash: header.parent_hash };
    Ok(Header { block, logs_bloom: header.logs_bloom })
}

async fn fetch_header(endpoint: &Endpoint, tag: BlockNumberOrTag) -> Result<Option<Header>, ChainError> {
    let block =
        endpoint.provider.get_block_by_number(tag).await.map_err(|e| classify(&endpoint.label, &e, None))?;
    block.as_ref().map(|b| header_of(endpoint, b)).transpose()
}

async fn fetch_block(endpoint: &Endpoint, tag: BlockNumberOrTag) -> Result<Option<BlockRef>, ChainError> {
    Ok(fetch_header(endpoint, tag).await?.map(|h| h.block))
}

/// A block that must exist: a missing one means this endpoint lags, and another should be asked.
async fn require_header(endpoint: &Endpoint, number: u64) -> Result<Header, ChainError> {
    fetch_header(endpoint, BlockNumberOrTag::Number(number))
        .await?
        .ok_or_else(|| ChainError::BlockUnavailable { endpoint: endpoint.label.clone(), number })
}

async fn require_block(endpoint: &Endpoint, number: u64) -> Result<BlockRef, ChainError> {
    Ok(require_header(endpoint, number).await?.block)
}

fn raw_log(endpoint: &Endpoint, log: Log) -> Result<RawLog, ChainError> {
    let missing = |field: &str| ChainError::InvalidResponse {
        endpoint: endpoint.label.clone(),
        message: format!("log without {field} (a pending log?)"),
    };
    let topics = log.topics().to_vec();
    Ok(RawLog {
        address: log.address(),
        topics,
        data: log.inner.data.data,
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
        match level {
            FinalityLevel::Latest => {
                // Ask every endpoint; the highest head wins, and each endpoint's own head is remembered.
                let answers = futures::future::join_all(self.endpoints.all().iter().map(|e| {
                    let e: Arc<Endpoint> = e.clone();
                    async move {
                        let started = std::time::Instant::now();
                        let head = fetch_block(&e, BlockNumberOrTag::Latest).await;
                        self.endpoints.observe("eth_getBlockByNumber", &e, started, head.as_ref().err());
                        if let Ok(Some(block)) = &head {
                            e.saw_head(block.number);
                        }
                        head
                    }
                }))
                .await;
                let best = answers
                    .iter()
                    .filter_map(|a| a.as_ref().ok().copied().flatten())
                    .max_by_key(|b| b.number);
                match best {
                    Some(block) => Ok(Some(block)),
                    // Every endpoint failed: retry through the pool for its backoff and error typing.
                    None => {
                        self.endpoints
                            .call("eth_getBlockByNumber", 0, |e| async move {
                                fetch_block(&e, BlockNumberOrTag::Latest).await
                            })
                            .await
                    }
                }
            }
            FinalityLevel::Safe | FinalityLevel::Finalized => {
                let tag = if level == FinalityLevel::Safe {
                    BlockNumberOrTag::Safe
                } else {
                    BlockNumberOrTag::Finalized
                };
                match self
                    .endpoints
                    .call("eth_getBlockByNumber", 0, |e| async move { fetch_block(&e, tag).await })
                    .await
                {
                    // Nodes without the tag refuse it (pre-merge chains, some L2s): the caller uses depth instead.
                    Err(ChainError::Rpc { .. }) => Ok(None),
                    other => other,
                }
            }
        }
    }

    async fn header_by_hash(&self, hash: alloy::primitives::B256) -> Result<Option<Header>, ChainError> {
        self.endpoints
            .call("eth_getBlockByHash", 0, |e| async move {
                let block =
                    e.provider.get_block_by_hash(hash).await.map_err(|err| classify(&e.label, &err, None))?;
                block.as_ref().map(|b| header_of(&e, b)).transpose()
            })
            .await
    }

    async fn header(&self, number: u64) -> Result<Option<Header>, ChainError> {
        match self
            .endpoints
            .call("eth_getBlockByNumber", number, |e| async move { require_header(&e, number).await })
            .await
        {
            Ok(block) => Ok(Some(block)),
            Err(ChainError::BlockUnavailable { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn transaction_sender(
        &self,
        tx_hash: alloy::primitives::B256,
    ) -> Result<Option<Address>, ChainError> {
        use alloy::network::TransactionResponse;
        self.endpoints
            .call("eth_getTransactionByHash", 0, |e| async move {
                let tx = e
                    .provider
                    .get_transaction_by_hash(tx_hash)
                    .await
                    .map_err(|err| classify(&e.label, &err, None))?;
                Ok(tx.map(|tx| tx.from()))
            })
            .await
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<RawLog>, ChainError> {
        match query {
            LogQuery::Range { from, to, addresses } => {
                let (from, to) = (*from, *to);
                let filter = Filter::new().address(addresses.clone()).from_block(from).to_block(to);
                self.endpoints
                    .call("eth_getLogs", to, |e| {
                        let filter = filter.clone();
                        async move {
                            let logs = e
                                .provider
                                .get_logs(&filter)
                                .await
                                .map_err(|err| classify(&e.label, &err, Some((from, to))))?;
                            // A node that lags answers an empty list for blocks it does not have yet: make sure it
                            // has the end of the range before trusting the answer.
                            require_block(&e, to).await?;
                            logs.into_iter().map(|log| raw_log(&e, log)).collect()
                        }
                    })
                    .await
            }
            LogQuery::Block { hash, addresses } => {
                let filter = Filter::new().address(addresses.clone()).at_block_hash(*hash);
                self.endpoints
                    .call("eth_getLogs", 0, |e| {
                        let filter = filter.clone();
                        async move {
                            let logs = e
                                .provider
                                .get_logs(&filter)
                                .await
                                .map_err(|err| classify(&e.label, &err, None))?;
                            logs.into_iter().map(|log| raw_log(&e, log)).collect()
                        }
                    })
                    .await
            }
        }
    }
}
