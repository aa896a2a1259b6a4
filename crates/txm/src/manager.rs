//! The front door: requests are checked (signer, chain, gas, fees, balance), accepted into the ledger with
//! their nonce, and the workers are woken. Client-signed transactions are decoded, verified and checked
//! against the chain and the allowlist before they are tracked. The API and the benchmark both come here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use gemgate_domain::broadcast::{CallRequest, FeeQuote, SendFailure};
use gemgate_domain::ledger::{Accepted, Attempt, Funds, NewTransaction, RawSubmission, TxRecord};
use gemgate_domain::ports::{Broadcaster, Ledger};
use gemgate_domain::relay::RelayedCall;
use gemgate_domain::{ChainError, ChainId, SendError, StoreError, TxState};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::draft::{self, Price};
use crate::fees::{self, Speed};
use crate::metrics::{ChainLabel, TxmMetrics};
use crate::signers::NamedSigner;
use crate::view;

/// How the manager and its workers behave.
#[derive(Debug, Clone)]
pub struct TxmOptions {
    /// How often an idle worker looks at its ledger (a request accepted in this process wakes it at once).
    pub poll_interval: Duration,
    /// How long after a broadcast a pending transaction is first checked and re-priced; the wait doubles
    /// with each re-pricing up to `max_bump_after`.
    pub bump_after: Duration,
    pub max_bump_after: Duration,
    /// How long after a broadcast the node is asked whether it still holds the transaction (re-broadcast if not).
    pub rebroadcast_after: Duration,
    /// The most a new transaction may pay per gas (wei); replacements are never capped.
    pub max_fee_per_gas: Option<u128>,
    /// Gas estimates are raised by this many percent (Gemforce's guidance: 20).
    pub gas_buffer_percent: u64,
    /// A worker's lease lasts this long without renewal.
    pub lease_ttl: Duration,
    /// Client-signed transactions may only call these (`to`, allowed selectors; no selectors: any call).
    pub raw_allow: Vec<RawAllow>,
    /// Client-signed transactions may not pay more than this many times the current fee cap.
    pub raw_max_fee_multiple: u128,
}

impl Default for TxmOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            bump_after: Duration::from_secs(30),
            max_bump_after: Duration::from_secs(600),
            rebroadcast_after: Duration::from_secs(10),
            max_fee_per_gas: None,
            gas_buffer_percent: 20,
            lease_ttl: Duration::from_secs(3),
            raw_allow: Vec::new(),
            raw_max_fee_multiple: 10,
        }
    }
}

/// One allowlist entry for client-signed transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAllow {
    pub to: Address,
    /// Four-byte selectors; empty allows any call (and plain transfers).
    pub selectors: Vec<[u8; 4]>,
}

/// A request as the API validated its shape.
#[derive(Debug, Clone)]
pub struct Submit {
    pub idempotency_key: Option<String>,
    pub body_sha256: String,
    pub signer: String,
    pub chain_id: ChainId,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: Option<u64>,
    pub speed: Speed,
    pub valid_until: Option<(String, u64)>,
    /// The users' ERC-2771 requests this transaction relays (empty for the signer's own calls).
    pub relayed: Vec<RelayedCall>,
}

impl Submit {
    /// A plain value transfer from `signer` under idempotency `key` (used as the body's digest too), gas
    /// estimated, at normal speed, without expiry; set the other fields on the result.
    pub fn transfer(key: &str, signer: &str, chain_id: ChainId, to: Address, value: U256) -> Self {
        Self {
            idempotency_key: Some(key.to_string()),
            body_sha256: key.to_string(),
            signer: signer.to_string(),
            chain_id,
            to: Some(to),
            value,
            data: Bytes::new(),
            gas_limit: None,
            speed: Speed::Normal,
            valid_until: None,
            relayed: Vec::new(),
        }
    }
}

/// Why a request was not accepted. Every variant but `Store` and `Chain` is the client's to fix (4xx).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("unknown signer {0:?}")]
    UnknownSigner(String),
    #[error("chain {0} is not configured")]
    UnknownChain(ChainId),
    #[error("signer {signer:?} is not allowed on chain {chain_id}")]
    SignerNotOnChain { signer: String, chain_id: ChainId },
    #[error("the transaction reverts in gas estimation: {0}")]
    Reverts(String),
    #[error("the node refuses the transaction: {0}")]
    Refused(SendError),
    #[error(
        "insufficient funds: balance {balance} wei, this request and everything pending need {needed} wei"
    )]
    InsufficientFunds { balance: U256, needed: U256 },
    #[error("the fee cap {needed} wei per gas is above the configured limit {limit}")]
    AboveFeeCap { needed: u128, limit: u128 },
    #[error("idempotency key already used with another body (request {0})")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request's outcome at the door.
#[derive(Debug, Clone)]
pub enum Submitted {
    New(TxRecord),
    Existing(TxRecord),
}

impl Submitted {
    pub fn record(&self) -> &TxRecord {
        match self {
            Submitted::New(r) | Submitted::Existing(r) => r,
        }
    }
}

/// Fee quotes are shared for this long (one `eth_feeHistory` per chain per second at most).
const QUOTE_TTL: Duration = Duration::from_secs(1);
/// Balances and transaction counts are shared for this long (see `TxManager::account`).
const ACCOUNT_TTL: Duration = Duration::from_secs(1);

pub struct TxManager {
    pub store: Arc<dyn Ledger>,
    pub chains: HashMap<ChainId, Arc<dyn Broadcaster>>,
    pub signers: HashMap<String, NamedSigner>,
    pub options: TxmOptions,
    pub(crate) wake: Notify,
    quotes: Shared<ChainId, FeeQuote>,
    /// A sender's balance and transaction count.
    accounts: Shared<(ChainId, Address), (U256, u64)>,
    acceptor: std::sync::OnceLock<tokio::sync::mpsc::Sender<Pending>>,
    /// Per chain, the depth standing in for `safe` and `finalized` where the node has no such tags.
    depths: HashMap<ChainId, u64>,
    /// Counted here and by the workers (unregistered, so invisible, unless `with_metrics` is called).
    pub metrics: TxmMetrics,
    /// Where the workers read the time (the wall clock unless `with_clock` is called).
    pub clock: Clock,
}

/// Values read from a node and shared for a while (fee quotes, balances): at most one read per key per `ttl`.
struct Shared<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Shared<K, V> {
    fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The value if it was read less than `ttl` ago.
    fn fresh(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (Instant::now(), value));
        }
    }

    fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

/// A request waiting for the acceptor, with where its answer goes.
type Pending = (NewTransaction, u64, tokio::sync::oneshot::Sender<Result<Accepted, StoreError>>);

/// At most this many requests share one accepting database transaction.
const ACCEPT_BATCH: usize = 256;

/// The acceptor: takes every request waiting (up to `ACCEPT_BATCH`) and accepts them in one database
/// transaction. It ends when the manager (the last sender) is dropped.
async fn accept_batches(store: Arc<dyn Ledger>, mut requests: tokio::sync::mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(ACCEPT_BATCH);
    while requests.recv_many(&mut batch, ACCEPT_BATCH).await > 0 {
        let (items, answers): (Vec<(NewTransaction, u64)>, Vec<_>) =
            batch.drain(..).map(|(request, nonce, answer)| ((request, nonce), answer)).unzip();
        match store.accept(&items, &view::payload).await {
            Ok(accepted) => {
                for (answer, result) in answers.into_iter().zip(accepted) {
                    let _ = answer.send(Ok(result));
                }
            }
            Err(error) => {
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }
}

impl std::fmt::Debug for TxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxManager").field("signers", &self.signers).field("options", &self.options).finish()
    }
}

impl TxManager {
    pub fn new(
        store: Arc<dyn Ledger>,
        chains: HashMap<ChainId, Arc<dyn Broadcaster>>,
        signers: HashMap<String, NamedSigner>,
        options: TxmOptions,
    ) -> Self {
        Self {
            store,
            chains,
            signers,
            options,
            wake: Notify::new(),
            quotes: Shared::new(QUOTE_TTL),
            accounts: Shared::new(ACCOUNT_TTL),
            acceptor: std::sync::OnceLock::new(),
            depths: HashMap::new(),
            metrics: TxmMetrics::default(),
            clock: Clock::System,
        }
    }

    /// Reads the time from `clock` (tests drive a paused tokio clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Counts into the process's registered transaction metrics (each chain's counters shown at zero).
    pub fn with_metrics(mut self, metrics: TxmMetrics) -> Self {
        for &chain_id in self.chains.keys() {
            metrics.start_chain(chain_id);
        }
        self.metrics = metrics;
        self
    }

    /// Sets each chain's depth for `safe` and `finalized` on nodes without those tags (`chains.confirmations`).
    pub fn with_confirmations(mut self, depths: HashMap<ChainId, u64>) -> Self {
        self.depths = depths;
        self
    }

    /// The chain's depth for `safe` and `finalized` where the node has no tags (`chains.confirmations`).
    pub fn confirmations(&self, chain_id: ChainId) -> u64 {
        self.depths.get(&chain_id).copied().unwrap_or(gemgate_config::DEFAULT_CONFIRMATIONS)
    }

    pub fn chain(&self, chain_id: ChainId) -> Result<&Arc<dyn Broadcaster>, SubmitError> {
        self.chains.get(&chain_id).ok_or(SubmitError::UnknownChain(chain_id))
    }

    /// The market price at `speed` (cached for a second per chain).
    pub async fn market(&self, chain_id: ChainId, speed: Speed) -> Result<Price, SubmitError> {
        let quote = match self.quotes.fresh(&chain_id) {
            Some(quote) => quote,
            None => {
                let quote = self.chain(chain_id)?.fees(10, &Speed::PERCENTILES).await?;
                self.quotes.put(chain_id, quote.clone());
                quote
            }
        };
        Ok(match quote {
            FeeQuote::Eip1559 { next_base_fee, rewards } => {
                Price::Eip1559(fees::from_history(next_base_fee, &rewards, speed))
            }
            FeeQuote::Legacy { gas_price } => Price::Legacy { gas_price: gas_price.max(1) },
        })
    }

    /// The sender's balance and transaction count (pool included), shared for `ACCOUNT_TTL`. The balance
    /// check sums everything pending in the database at acceptance, so a second-old balance can only miss
    /// what was included in that second; a stale count is harmless (the ledger keeps the higher one).
    async fn account(
        &self,
        chain_id: ChainId,
        rpc: &dyn Broadcaster,
        from: Address,
    ) -> Result<(U256, u64), SubmitError> {
        if let Some(seen) = self.accounts.fresh(&(chain_id, from)) {
            return Ok(seen);
        }
        let seen = tokio::try_join!(rpc.balance(from), rpc.nonce(from, true))?;
        self.accounts.put((chain_id, from), seen);
        Ok(seen)
    }

    /// Forgets the cached quote (after a node refused a price as too low).
    pub fn forget_market(&self, chain_id: ChainId) {
        self.quotes.forget(&chain_id);
    }

    /// Estimates gas with the configured buffer; a revert is the client's problem, with the reason.
    pub async fn estimate(
        &self,
        chain_id: ChainId,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: &Bytes,
    ) -> Result<u64, SubmitError> {
        let call = CallRequest { from, to, value, data: data.clone(), gas_limit: None };
        match self.chain(chain_id)?.estimate_gas(&call).await {
            Ok(gas) => Ok(gas.saturating_mul(100 + self.options.gas_buffer_percent).div_ceil(100)),
            Err(SendFailure::Refused(SendError::Reverted { message })) => Err(SubmitError::Reverts(message)),
            Err(SendFailure::Refused(other)) => Err(SubmitError::Refused(other)),
            Err(SendFailure::Chain(e)) => Err(SubmitError::Chain(e)),
        }
    }

    /// Accepts a request: checks it, allocates its nonce in the ledger and wakes the workers.
    pub async fn submit(&self, request: Submit) -> Result<Submitted, SubmitError> {
        let signer = self
            .signers
            .get(&request.signer)
            .ok_or_else(|| SubmitError::UnknownSigner(request.signer.clone()))?;
        let rpc = self.chain(request.chain_id)?;
        if !signer.chains.contains(&request.chain_id) {
            return Err(SubmitError::SignerNotOnChain {
                signer: request.signer.clone(),
                chain_id: request.chain_id,
            });
        }
        let from = signer.address;
        let gas_limit = match request.gas_limit {
            Some(gas) => gas,
            None => self.estimate(request.chain_id, from, request.to, request.value, &request.data).await?,
        };
        let price = self.market(request.chain_id, request.speed).await?;
        if let Some(limit) = self.options.max_fee_per_gas
            && price.max_per_gas() > limit
        {
            return Err(SubmitError::AboveFeeCap { needed: price.max_per_gas(), limit });
        }
        let (balance, chain_nonce) = self.account(request.chain_id, rpc.as_ref(), from).await?;
        let new = NewTransaction {
            idempotency_key: request.idempotency_key.clone(),
            body_sha256: request.body_sha256.clone(),
            chain_id: request.chain_id,
            signer: request.signer.clone(),
            sender: address_text(from),
            to: request.to.map(address_text),
            value: request.value.to_string(),
            data: request.data.to_string(),
            gas_limit: Some(gas_limit),
            speed: speed_text(request.speed).into(),
            valid_until: request.valid_until.as_ref().map(|(text, _)| text.clone()),
            valid_until_ms: request.valid_until.as_ref().map(|(_, ms)| *ms),
            funds: Some(Funds { balance, max_fee_per_gas: price.max_per_gas() }),
            relayed: request.relayed,
        };
        let accepted = self.accept(new, chain_nonce).await?;
        match accepted {
            Accepted::New(record) => {
                self.metrics.accepted.get_or_create(&ChainLabel { chain_id: record.chain_id }).inc();
                self.wake.notify_waiters();
                Ok(Submitted::New(record))
            }
            Accepted::Existing(record) => Ok(Submitted::Existing(record)),
            Accepted::Conflict { id } => Err(SubmitError::Conflict(id)),
            Accepted::InsufficientFunds { balance, needed } => {
                Err(SubmitError::InsufficientFunds { balance, needed })
            }
        }
    }

    /// Accepts through the group-commit queue: requests arriving while a batch commits go in the next one.
    async fn accept(&self, request: NewTransaction, chain_nonce: u64) -> Result<Accepted, StoreError> {
        let queue = self.acceptor.get_or_init(|| {
            let (queue, requests) = tokio::sync::mpsc::channel(ACCEPT_BATCH * 4);
            tokio::spawn(accept_batches(self.store.clone(), requests));
            queue
        });
        let (answer, answered) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable { message: "the acceptor stopped".into() };
        queue.send((request, chain_nonce, answer)).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// Tracks a client-signed transaction: decoded, its signature recovered, checked against the chain
    /// (id, nonce, fees) and the allowlist, stored, then broadcast by the workers like our own.
    pub async fn submit_raw(&self, raw: &[u8]) -> Result<Submitted, SubmitError> {
        let decoded = draft::decode(raw).map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let chain_id = decoded.chain_id.ok_or_else(|| {
            SubmitError::Invalid(
                "the transaction has no chain id (pre-EIP-155): it could be replayed on any chain".into(),
            )
        })?;
        let rpc = self.chains.get(&chain_id).ok_or_else(|| {
            SubmitError::Invalid(format!(
                "the transaction is for chain {chain_id}, which is not configured here"
            ))
        })?;
        if self.signers.values().any(|s| s.address == decoded.sender) {
            return Err(SubmitError::Invalid(format!(
                "the sender {} is one of gemgate's signers: send through POST /v1/transactions",
                decoded.sender
            )));
        }
        if !self.raw_allowed(decoded.to, &decoded.data) {
            return Err(SubmitError::Invalid(match decoded.to {
                Some(to) => {
                    format!("calls to {to} with this selector are not in the allowlist (txm.raw_allow)")
                }
                None => "contract creation is not allowed for client-signed transactions".into(),
            }));
        }
        let existing = self
            .store
            .transaction(&format!("{chain_id}-{}-{}", address_text(decoded.sender), decoded.nonce))
            .await?;
        if existing.is_none() {
            let chain_nonce = rpc.nonce(decoded.sender, false).await?;
            if decoded.nonce < chain_nonce {
                return Err(SubmitError::Invalid(format!(
                    "nonce {} is below the sender's next nonce on chain {chain_id} ({chain_nonce}): it can never be included",
                    decoded.nonce
                )));
            }
            let market = self.market(chain_id, Speed::Fast).await?;
            let ceiling = market.max_per_gas().saturating_mul(self.options.raw_max_fee_multiple);
            if decoded.price.max_per_gas() > ceiling {
                return Err(SubmitError::Invalid(format!(
                    "the fee cap {} wei per gas is more than {} times the market's {}: refused as a likely mistake",
                    decoded.price.max_per_gas(),
                    self.options.raw_max_fee_multiple,
                    market.max_per_gas()
                )));
            }
            if let (Price::Eip1559(f), Price::Eip1559(_)) = (decoded.price, market)
                && f.max_priority_fee_per_gas > f.max_fee_per_gas
            {
                return Err(SubmitError::Invalid("the priority fee is above the fee cap".into()));
            }
        }
        let (max_fee, priority) = decoded.price.stored();
        let submission = RawSubmission {
            chain_id,
            sender: address_text(decoded.sender),
            nonce: decoded.nonce,
            to: decoded.to.map(address_text),
            value: decoded.value.to_string(),
            data: decoded.data.to_string(),
            speed: "normal".into(),
            attempt: Attempt {
                attempt: 0,
                purpose: "send".into(),
                hash: decoded.hash.to_string(),
                raw: Bytes::copy_from_slice(raw).to_string(),
                gas_limit: decoded.gas_limit,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: priority,
                sent_ms: None,
            },
        };
        match self.store.accept_raw(&submission, &view::payload).await? {
            Accepted::New(record) => {
                self.metrics.accepted.get_or_create(&ChainLabel { chain_id: record.chain_id }).inc();
                self.wake.notify_waiters();
                Ok(Submitted::New(record))
            }
            Accepted::Existing(record) => Ok(Submitted::Existing(record)),
            Accepted::Conflict { id } => Err(SubmitError::Conflict(id)),
            Accepted::InsufficientFunds { balance, needed } => {
                Err(SubmitError::InsufficientFunds { balance, needed })
            }
        }
    }

    fn raw_allowed(&self, to: Option<Address>, data: &Bytes) -> bool {
        let Some(to) = to else { return false };
        self.options.raw_allow.iter().any(|allow| {
            allow.to == to
                && (allow.selectors.is_empty()
                    || (data.len() >= 4 && allow.selectors.iter().any(|s| s[..] == data[..4])))
        })
    }

    /// Asks for a cancel: a zero-value self-transfer at the request's nonce. `None` for an unknown id.
    pub async fn cancel(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let record = self.store.request_ending(id, TxState::Cancelled).await?;
        self.wake.notify_waiters();
        Ok(record)
    }

    /// Asks for an immediate re-pricing of a pending request.
    pub async fn speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let record = self.store.request_speed_up(id).await?;
        self.wake.notify_waiters();
        Ok(record)
    }
}

/// Addresses as the ledger keeps them: lower case `0x` hex.
pub fn address_text(address: Address) -> String {
    format!("{address:#x}")
}

pub fn speed_text(speed: Speed) -> &'static str {
    match speed {
        Speed::Slow => "slow",
        Speed::Normal => "normal",
        Speed::Fast => "fast",
    }
}
