//! The `Broadcaster` port over JSON-RPC, through the endpoint pool: counts, balances, fee history, gas
//! estimates, broadcast, receipts and block hashes; and the `ViewCaller` port (view calls pinned to a block). A node's refusal of a transaction comes back typed
//! (`SendError`), apart from transport trouble (`ChainError`), because the two call for different actions.

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use gemgate_domain::broadcast::{CallRequest, FeeQuote, ReceiptSummary, SendFailure};
use gemgate_domain::calls::{BlockSelector, CallOutput, PinnedBlock};
use gemgate_domain::ports::{Broadcaster, ViewCaller};
use gemgate_domain::{ChainError, ChainId, FinalityLevel, SendError};

use crate::classify::classify;
use crate::endpoints::{Endpoint, Endpoints, RetryPolicy};
use crate::metrics::RpcMetrics;
use crate::send_errors::{self, send_error};

fn summary(r: &alloy::rpc::types::TransactionReceipt) -> Option<ReceiptSummary> {
    Some(ReceiptSummary {
        tx_hash: r.transaction_hash,
        success: r.status(),
        block_number: r.block_number?,
        block_hash: r.block_hash?,
        gas_used: r.gas_used,
        effective_gas_price: r.effective_gas_price,
    })
}

fn transaction_request(call: &CallRequest) -> TransactionRequest {
    let mut request =
        TransactionRequest::default().from(call.from).value(call.value).input(call.data.clone().into());
    if let Some(to) = call.to {
        request = request.to(to);
    }
    if let Some(gas) = call.gas_limit {
        request = request.gas_limit(gas);
    }
    request
}

/// The transaction manager's view of one chain.
#[derive(Debug)]
pub struct TxRpc {
    chain_id: ChainId,
    endpoints: Endpoints,
}

fn chain_error(
    endpoint: &Endpoint,
    error: &alloy::transports::RpcError<alloy::transports::TransportErrorKind>,
) -> ChainError {
    classify(&endpoint.label, error, None)
}

impl TxRpc {
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

    /// A block's number and hash by number or tag; `None` when the node has no such block (or tag).
    async fn block(&self, at: BlockNumberOrTag) -> Result<Option<(u64, B256)>, ChainError> {
        let block = self
            .endpoints
            .call("eth_getBlockByNumber", 0, |e| async move {
                match e.provider.get_block_by_number(at).await {
                    Ok(block) => Ok(block),
                    // Nodes without safe/finalized tags answer with an error rather than null.
                    Err(err) if matches!(at, BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized) => {
                        tracing::debug!(endpoint = %e.label, error = %err, "no {at} block");
                        Ok(None)
                    }
                    Err(err) => Err(chain_error(&e, &err)),
                }
            })
            .await?;
        Ok(block.map(|b| (b.header.number, b.header.hash)))
    }

    /// Runs a call whose JSON-RPC error is a refusal to type, not a failure to retry.
    async fn refusable<T, F, Fut>(&self, method: &'static str, call: F) -> Result<T, SendFailure>
    where
        F: Fn(std::sync::Arc<Endpoint>) -> Fut,
        Fut: std::future::Future<
                Output = Result<T, alloy::transports::RpcError<alloy::transports::TransportErrorKind>>,
            >,
    {
        let answer = self
            .endpoints
            .call(method, 0, |e| {
                let call = call(e.clone());
                async move {
                    match call.await {
                        Ok(value) => Ok(Ok(value)),
                        Err(err) => match send_error(&err) {
                            // A refusal is an answer: retrying elsewhere would only repeat it.
                            Some(refusal) if !matches!(refusal, SendError::Other { code: -32603, .. }) => {
                                Ok(Err(refusal))
                            }
                            _ => Err(chain_error(&e, &err)),
                        },
                    }
                }
            })
            .await
            .map_err(SendFailure::Chain)?;
        answer.map_err(SendFailure::Refused)
    }
}

#[async_trait::async_trait]
impl Broadcaster for TxRpc {
    fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// The sender's transaction count: mined (`pending = false`) or including the node's pool.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %address, pending))]
    async fn nonce(&self, address: Address, pending: bool) -> Result<u64, ChainError> {
        self.endpoints
            .call("eth_getTransactionCount", 0, |e| async move {
                let call = e.provider.get_transaction_count(address);
                let call = if pending { call.pending() } else { call.latest() };
                call.await.map_err(|err| chain_error(&e, &err))
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %address))]
    async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.endpoints
            .call("eth_getBalance", 0, |e| async move {
                e.provider.get_balance(address).await.map_err(|err| chain_error(&e, &err))
            })
            .await
    }

    /// `eth_feeHistory` over the last `blocks` blocks at `percentiles`, or the gas price on a chain whose
    /// blocks have no base fee.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, blocks))]
    async fn fees(&self, blocks: u64, percentiles: &[f64]) -> Result<FeeQuote, ChainError> {
        let history = self
            .endpoints
            .call("eth_feeHistory", 0, |e| async move {
                e.provider
                    .get_fee_history(blocks, BlockNumberOrTag::Latest, percentiles)
                    .await
                    .map_err(|err| chain_error(&e, &err))
            })
            .await?;
        match history.next_block_base_fee() {
            Some(base) if base > 0 => {
                Ok(FeeQuote::Eip1559 { next_base_fee: base, rewards: history.reward.unwrap_or_default() })
            }
            _ => {
                let gas_price = self
                    .endpoints
                    .call("eth_gasPrice", 0, |e| async move {
                        e.provider.get_gas_price().await.map_err(|err| chain_error(&e, &err))
                    })
                    .await?;
                Ok(FeeQuote::Legacy { gas_price })
            }
        }
    }

    /// `eth_estimateGas`; a revert comes back as `Refused(Reverted)` with the node's reason.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, to = ?call.to))]
    async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, SendFailure> {
        self.refusable("eth_estimateGas", |e| {
            let request = transaction_request(call);
            async move { e.provider.estimate_gas(request).await }
        })
        .await
    }

    /// `eth_call` of a transaction at a block, for the revert reason of a failed one: the decoded
    /// `Error(string)` or `Panic(uint256)`, or the node's message.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, to = ?call.to, block))]
    async fn revert_reason(&self, call: &CallRequest, block: u64) -> Option<String> {
        let answer = self
            .refusable("eth_call", |e| {
                let request = transaction_request(call);
                async move { e.provider.call(request).block(block.into()).await }
            })
            .await;
        match answer {
            Ok(_) => None,
            Err(SendFailure::Refused(SendError::Reverted { message })) => Some(message),
            Err(other) => Some(other.to_string()),
        }
    }

    /// `eth_sendRawTransaction`: the hash, or the node's typed refusal.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, bytes = raw.len()))]
    async fn send_raw(&self, raw: &Bytes) -> Result<B256, SendFailure> {
        self.refusable("eth_sendRawTransaction", |e| {
            let raw = raw.clone();
            async move { e.provider.raw_request::<_, B256>("eth_sendRawTransaction".into(), (raw,)).await }
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %hash))]
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptSummary>, ChainError> {
        let receipt = self
            .endpoints
            .call("eth_getTransactionReceipt", 0, |e| async move {
                e.provider.get_transaction_receipt(hash).await.map_err(|err| chain_error(&e, &err))
            })
            .await?;
        Ok(receipt.as_ref().and_then(summary))
    }

    /// Every receipt of block `number` in one call (`eth_getBlockReceipts`); `None` when the node does not
    /// have the block. A node without the method answers with an `Rpc` error.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, number))]
    async fn block_receipts(&self, number: u64) -> Result<Option<Vec<ReceiptSummary>>, ChainError> {
        let receipts = self
            .endpoints
            .call("eth_getBlockReceipts", number, |e| async move {
                e.provider.get_block_receipts(number.into()).await.map_err(|err| chain_error(&e, &err))
            })
            .await?;
        Ok(receipts.map(|receipts| receipts.iter().filter_map(summary).collect()))
    }

    /// Whether the node knows the transaction (pending or mined).
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %hash))]
    async fn knows(&self, hash: B256) -> Result<bool, ChainError> {
        self.endpoints
            .call("eth_getTransactionByHash", 0, |e| async move {
                e.provider
                    .raw_request::<_, Option<serde_json::Value>>("eth_getTransactionByHash".into(), (hash,))
                    .await
                    .map(|t| t.is_some())
                    .map_err(|err| chain_error(&e, &err))
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, level = ?level))]
    async fn head(&self, level: FinalityLevel) -> Result<Option<(u64, B256)>, ChainError> {
        let tag = match level {
            FinalityLevel::Latest => BlockNumberOrTag::Latest,
            FinalityLevel::Safe => BlockNumberOrTag::Safe,
            FinalityLevel::Finalized => BlockNumberOrTag::Finalized,
        };
        self.block(tag).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, number))]
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self.block(BlockNumberOrTag::Number(number)).await?.map(|(_, hash)| hash))
    }
}

#[async_trait::async_trait]
impl ViewCaller for TxRpc {
    fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %at))]
    async fn pin(&self, at: BlockSelector) -> Result<Option<PinnedBlock>, ChainError> {
        let block = match at {
            BlockSelector::Latest => self.block(BlockNumberOrTag::Latest).await?,
            BlockSelector::Safe => self.block(BlockNumberOrTag::Safe).await?,
            BlockSelector::Finalized => self.block(BlockNumberOrTag::Finalized).await?,
            BlockSelector::Number(n) => self.block(BlockNumberOrTag::Number(n)).await?,
            BlockSelector::Hash(hash) => self
                .endpoints
                .call("eth_getBlockByHash", 0, |e| async move {
                    e.provider.get_block_by_hash(hash).await.map_err(|err| chain_error(&e, &err))
                })
                .await?
                .map(|b| (b.header.number, b.header.hash)),
        };
        Ok(block.map(|(number, hash)| PinnedBlock { number, hash }))
    }

    /// `eth_call` pinned by block hash; a revert (JSON-RPC code 3, or "execution reverted") is an answer
    /// with the revert data, not an error.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, to = ?call.to, %at))]
    async fn call_at(&self, call: &CallRequest, at: B256) -> Result<CallOutput, ChainError> {
        self.endpoints
            .call("eth_call", 0, |e| {
                let request = transaction_request(call);
                async move {
                    match e.provider.call(request).block(BlockId::hash(at)).await {
                        Ok(bytes) => Ok(CallOutput::Returned(bytes)),
                        Err(alloy::transports::RpcError::ErrorResp(payload))
                            if matches!(
                                send_errors::classify_send(payload.code, &payload.message),
                                SendError::Reverted { .. }
                            ) =>
                        {
                            let data = payload.as_revert_data().unwrap_or_default();
                            Ok(CallOutput::Reverted { data, message: payload.message.to_string() })
                        }
                        Err(err) => Err(chain_error(&e, &err)),
                    }
                }
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, %address, %at))]
    async fn has_code(&self, address: Address, at: B256) -> Result<bool, ChainError> {
        self.endpoints
            .call("eth_getCode", 0, |e| async move {
                e.provider
                    .get_code_at(address)
                    .block_id(BlockId::hash(at))
                    .await
                    .map(|code| !code.is_empty())
                    .map_err(|err| chain_error(&e, &err))
            })
            .await
    }
}
