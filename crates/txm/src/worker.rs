//! The workers: one per (chain, signer) holding the sender's lease, plus one per chain for client-signed
//! transactions. Each pass reads the live requests from the ledger and moves them on:
//!
//! 1. **sign** queued requests in nonce order and store the signed bytes (one database transaction) before
//!    anything is sent, so a crash leaves "maybe sent" attempts that are sent again as they are;
//! 2. **broadcast** signed attempts; the node's answer is read as a typed `SendError`;
//! 3. **watch**: a nonce below the sender's mined count is settled by a receipt of one of its attempts
//!    (included, failed with the revert reason, or the end of a cancel/expiry), or, with no receipt of
//!    ours, `replaced`; a pending one the node forgot is sent again, one pending too long is re-priced
//!    (+10% on both fees, at least the market, never capped); an included one whose block left the chain
//!    goes back to `submitted` and is sent again; included ones become `safe` and `finalized` with the
//!    chain's tags.
//!
//! A request that cannot be sent as is (expired, cancelled, refused by the signer's policy or by every
//! node) never leaves a hole: its nonce is filled with a zero-value self-transfer, so later nonces are not
//! held hostage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::TransactionRequest;
use futures::StreamExt;
use gemgate_chain::{ReceiptSummary, SendFailure, TxRpc};
use gemgate_domain::ledger::{Attempt, Inclusion, Lease, LiveTx, TxChange, TxRecord, ordering_key};
use gemgate_domain::{SendError, SignerError, StoreError, TxState};

use crate::draft::{Draft, Price, Signing};
use crate::fees::{self, Speed};
use crate::manager::TxManager;
use crate::metrics::{GapLabels, SignerLabels, StateLabel};
use crate::signers::NamedSigner;
use crate::view;

/// How many RPC calls a pass keeps in flight.
const CONCURRENCY: usize = 64;
/// How often included transactions are checked against the chain (reorgs, safe and finalized heads).
const CONFIRM_EVERY: Duration = Duration::from_millis(1_000);
/// A nonce used on chain this long after our last broadcast, with no receipt of ours, was taken by another
/// transaction.
const REPLACED_AFTER: Duration = Duration::from_secs(5);
/// At most this many requests are signed per pass (a pass commits them in one database transaction).
const SIGN_BATCH: usize = 500;
/// Receipts are read a block at a time for at most this many blocks back.
const SCAN_DEPTH: u64 = 64;
/// How often a signer's balance and the ledger's counts by state are read for the metrics.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// What a worker does with one request in one pass.
struct Step<'a> {
    live: &'a LiveTx,
    change: Option<TxChange>,
}

impl<'a> Step<'a> {
    fn new(live: &'a LiveTx) -> Self {
        Self { live, change: None }
    }

    fn record(&self) -> &TxRecord {
        &self.live.record
    }

    /// The change being built (created on first use, in the request's current state).
    fn change(&mut self) -> &mut TxChange {
        let r = &self.live.record;
        self.change.get_or_insert_with(|| {
            TxChange::new(&r.id, r.revision, r.state, r.chain_id, ordering_key(r.chain_id, &r.sender))
        })
    }

    fn moves_to(&mut self, state: TxState) -> &mut TxChange {
        let change = self.change();
        change.to = state;
        change
    }

    /// The change with its outbox payload (the record as it will be).
    fn finish(self) -> Option<TxChange> {
        let mut change = self.change?;
        change.payload = Some(view::payload(&after(&self.live.record, &change)));
        Some(change)
    }
}

/// The record as `change` leaves it (what `SqlStore::apply_changes` writes).
fn after(record: &TxRecord, change: &TxChange) -> TxRecord {
    let mut after = record.clone();
    after.state = change.to;
    after.revision = change.revision + 1;
    if let Some(inclusion) = &change.inclusion {
        after.tx_hash = inclusion.as_ref().map(|i| i.tx_hash.clone());
        after.block_number = inclusion.as_ref().map(|i| i.block_number);
        after.block_hash = inclusion.as_ref().map(|i| i.block_hash.clone());
        after.receipt = inclusion.as_ref().map(|i| i.receipt.clone());
    }
    if let Some(error) = &change.error {
        after.error = Some(error.clone());
    }
    if let Some(ending) = change.ending {
        after.ending = ending;
    }
    if let Some(gas) = change.gas_limit {
        after.gas_limit = Some(gas);
    }
    after
}

/// The live requests as `changes` (all applied) leave them, without reading them again.
fn with_changes(live: Vec<LiveTx>, changes: &[TxChange]) -> Vec<LiveTx> {
    let by_id: HashMap<&str, &TxChange> = changes.iter().map(|c| (c.id.as_str(), c)).collect();
    live.into_iter()
        .map(|mut l| {
            if let Some(change) = by_id.get(l.record.id.as_str()) {
                l.record = after(&l.record, change);
                l.attempts.extend(change.attempt.clone());
                if let Some((number, ms)) = change.sent
                    && let Some(attempt) = l.attempts.iter_mut().find(|a| a.attempt == number)
                {
                    attempt.sent_ms = Some(ms);
                }
            }
            l
        })
        .collect()
}

/// Runs the worker for one signer on one chain until `shutdown` fires: takes the sender's lease (waiting
/// while another process holds it), then passes over the ledger.
pub async fn run_sender(
    manager: Arc<TxManager>,
    chain_id: u64,
    signer: NamedSigner,
    holder: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let sender = crate::manager::address_text(signer.address);
    if let Some(mut worker) = SenderWorker::new(manager, chain_id, Some(signer), sender, holder) {
        worker.run(shutdown).await;
    }
}

/// Runs the worker that broadcasts and follows client-signed transactions on one chain.
pub async fn run_raw(
    manager: Arc<TxManager>,
    chain_id: u64,
    holder: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if let Some(mut worker) = SenderWorker::new(manager, chain_id, None, "raw".into(), holder) {
        worker.run(shutdown).await;
    }
}

struct SenderWorker {
    manager: Arc<TxManager>,
    rpc: Arc<TxRpc>,
    /// `None`: the client-signed transactions of the chain (nothing is signed, priced or filled).
    signer: Option<NamedSigner>,
    /// The lease's name: the signer's address, or `raw`.
    sender: String,
    chain_id: u64,
    holder: String,
    last_confirm: std::sync::Mutex<std::time::Instant>,
    /// When each request's last attempt was last sent again (request id → Unix ms). In memory only: after a
    /// restart everything is simply sent again once.
    resent: std::sync::Mutex<HashMap<String, u64>>,
    /// The last block whose receipts were read in bulk.
    scanned: std::sync::Mutex<Option<u64>>,
    /// Set when the node answered `eth_getBlockReceipts` with an error: receipts by hash only.
    no_block_receipts: std::sync::atomic::AtomicBool,
    /// When the signer's balance gauge was last read.
    last_gauges: std::sync::Mutex<Option<std::time::Instant>>,
}

impl SenderWorker {
    /// A worker for `sender` on `chain_id`; `None` when the chain is not configured.
    fn new(
        manager: Arc<TxManager>,
        chain_id: u64,
        signer: Option<NamedSigner>,
        sender: String,
        holder: String,
    ) -> Option<Self> {
        let rpc = manager.chains.get(&chain_id).cloned()?;
        Some(Self {
            manager,
            rpc,
            signer,
            sender,
            chain_id,
            holder,
            last_confirm: std::sync::Mutex::new(std::time::Instant::now()),
            resent: std::sync::Mutex::new(HashMap::new()),
            scanned: std::sync::Mutex::new(None),
            no_block_receipts: std::sync::atomic::AtomicBool::new(false),
            last_gauges: std::sync::Mutex::new(None),
        })
    }

    async fn run(&mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let options = self.manager.options.clone();
        let ttl = options.lease_ttl.as_millis() as u64;
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let lease = match self
                .manager
                .store
                .take_lease(self.chain_id, &self.sender, &self.holder, now_ms(), ttl)
                .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tracing::debug!(sender = %self.sender, chain = self.chain_id, "lease held by another worker");
                    wait(&mut shutdown, options.lease_ttl / 3).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(sender = %self.sender, error = %e, "could not take the lease");
                    wait(&mut shutdown, options.poll_interval).await;
                    continue;
                }
            };
            let busy = match self.pass(&lease).await {
                Ok(busy) => {
                    failures = 0;
                    busy
                }
                Err(PassError::Store(StoreError::Fenced { current, .. })) => {
                    tracing::warn!(sender = %self.sender, token = lease.token, current, "lease lost to another worker");
                    false
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(sender = %self.sender, chain = self.chain_id, error = %e, "transaction pass failed; retrying");
                    let delay = gemgate_domain::backoff::backoff_delay(
                        options.poll_interval,
                        Duration::from_secs(10),
                        failures,
                        now_ms(),
                    );
                    wait(&mut shutdown, delay).await;
                    continue;
                }
            };
            if !busy {
                let notified = self.manager.wake.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(options.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// The signer's pending count as `changes` leave `live` (every pass) and its balance (at most every
    /// `GAUGE_EVERY`).
    async fn signer_gauges(&self, live: &[LiveTx], changes: &[TxChange]) {
        let Some(signer) = &self.signer else { return };
        let labels = SignerLabels { chain_id: self.chain_id, signer: signer.name.clone() };
        let moved: HashMap<&str, TxState> = changes.iter().map(|c| (c.id.as_str(), c.to)).collect();
        let pending = live
            .iter()
            .map(|l| moved.get(l.record.id.as_str()).copied().unwrap_or(l.record.state))
            .filter(|state| matches!(state, TxState::Queued | TxState::Signed | TxState::Submitted))
            .count();
        self.manager.metrics.signer_pending.get_or_create(&labels).set(pending as i64);
        let due = self.last_gauges.lock().map(|mut last| {
            let due = last.is_none_or(|at| at.elapsed() >= GAUGE_EVERY);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        });
        if due.unwrap_or(false)
            && let Ok(balance) = self.rpc.balance(signer.address).await
        {
            let ether = balance.to_string().parse::<f64>().unwrap_or(f64::MAX) / 1e18;
            self.manager.metrics.signer_balance.get_or_create(&labels).set(ether);
        }
    }

    /// One pass over the live requests. `Ok(true)` when it changed something (another pass follows at once).
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, sender = %self.sender, token = lease.token))]
    async fn pass(&self, lease: &Lease) -> Result<bool, PassError> {
        let store = &self.manager.store;
        let sender = self.signer.as_ref().map(|_| self.sender.as_str());
        let started = std::time::Instant::now();
        let mut live = store.live_work(self.chain_id, sender).await?;
        let read = started.elapsed();
        if live.is_empty() {
            self.signer_gauges(&[], &[]).await;
            return Ok(false);
        }
        let ttl = self.manager.options.lease_ttl.as_millis() as u64;

        // 1. Sign what is queued (or must be filled), and store the bytes before any broadcast.
        let mut signed = 0;
        if let Some(signer) = &self.signer
            && live.iter().any(|l| l.record.state == TxState::Queued)
        {
            let mined = self.rpc.nonce(signer.address, false).await?;
            let mut changes = Vec::new();
            for live in live.iter().filter(|l| l.record.state == TxState::Queued).take(SIGN_BATCH) {
                if let Some(change) = self.sign_queued(signer, live, mined).await? {
                    changes.push(change);
                }
            }
            signed = changes.len();
            if !changes.is_empty() {
                let applied = store.apply_changes(Some(lease), now_ms(), ttl, &changes).await?;
                self.manager.metrics.committed(self.chain_id, &live, &changes, now_ms());
                // Every change applied: the list in hand is brought up to date; else it is read again.
                live = if applied == changes.len() {
                    with_changes(live, &changes)
                } else {
                    store.live_work(self.chain_id, sender).await?
                };
            }
        }
        let signing = started.elapsed();

        // 2. Broadcast what is signed and never sent, in nonce order.
        let to_send: Vec<&LiveTx> = live
            .iter()
            .filter(|l| {
                l.record.state == TxState::Signed && l.attempts.last().is_some_and(|a| a.sent_ms.is_none())
            })
            .collect();
        let sends: Vec<_> = to_send.iter().map(|l| async move { (*l, self.broadcast(l).await) }).collect();
        let sends = futures::stream::iter(sends).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut changes = Vec::new();
        for (live, outcome) in sends {
            if let Some(change) = self.after_send(live, outcome).await? {
                changes.push(change);
            }
        }

        let sending = started.elapsed();
        // 3. Watch what is out there.
        let watched = self.watch(&live).await?;
        let watching = started.elapsed();
        changes.extend(watched);
        let busy = signed > 0 || !changes.is_empty();
        // One line for a round of re-pricing (a fee spike or a stuck queue re-prices many at once).
        let repriced: HashMap<&str, &Attempt> = changes
            .iter()
            .filter_map(|c| c.attempt.as_ref().filter(|a| a.attempt > 0).map(|a| (c.id.as_str(), a)))
            .collect();
        if !repriced.is_empty() {
            let nonces =
                live.iter().filter(|l| repriced.contains_key(l.record.id.as_str())).map(|l| l.record.nonce);
            let (low, high) = nonces.fold((u64::MAX, 0), |(low, high), n| (low.min(n), high.max(n)));
            let top = repriced.values().filter_map(|a| a.max_fee_per_gas.parse::<u128>().ok()).max();
            tracing::info!(
                sender = %self.sender,
                count = repriced.len(),
                nonces = %format!("{low}..={high}"),
                max_fee = top.unwrap_or_default(),
                "re-priced transactions that were not mined"
            );
        }
        // Renews the lease even with nothing to write.
        store.apply_changes(Some(lease), now_ms(), ttl, &changes).await?;
        self.manager.metrics.committed(self.chain_id, &live, &changes, now_ms());
        self.signer_gauges(&live, &changes).await;
        tracing::debug!(
            sender = %self.sender,
            live = live.len(),
            signed,
            sent = to_send.len(),
            changes = changes.len(),
            read_ms = read.as_millis() as u64,
            sign_ms = (signing - read).as_millis() as u64,
            send_ms = (sending - signing).as_millis() as u64,
            watch_ms = (watching - sending).as_millis() as u64,
            commit_ms = (started.elapsed() - watching).as_millis() as u64,
            "pass"
        );
        Ok(busy)
    }

    /// Signs a queued request, or the no-op that fills its nonce when it must not go out.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id))]
    async fn sign_queued(
        &self,
        signer: &NamedSigner,
        live: &LiveTx,
        mined: u64,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let mut step = Step::new(live);
        if r.nonce < mined {
            // Someone else used this key's nonce: ours can never be included.
            step.moves_to(TxState::Replaced).error =
                Some(format!("nonce {} was used on chain by a transaction gemgate did not send", r.nonce));
            return Ok(step.finish());
        }
        let expired = r.valid_until_ms.is_some_and(|until| until <= now_ms());
        let ending = r.ending.or(expired.then_some(TxState::Expired));
        let speed = Speed::parse(&r.speed).unwrap_or_default();
        let market = self.manager.market(self.chain_id, speed).await?;
        let (draft, purpose) = match ending {
            Some(ending) => {
                step.change().ending = Some(Some(ending));
                (Draft::noop(self.chain_id, r.nonce, signer.address, market), "noop")
            }
            None => {
                if let Some(limit) = self.manager.options.max_fee_per_gas
                    && market.max_per_gas() > limit
                {
                    tracing::info!(id = %r.id, needed = market.max_per_gas(), limit, "fees above the cap; waiting");
                    return Ok(None);
                }
                (self.draft_of(r, market)?, "send")
            }
        };
        let attempt = match self.sign(signer, &draft, r, 0, purpose).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => return Ok(None), // held for approval
            Err(SignerError::Rejected { reason, .. }) => {
                // Refused by policy: fill the nonce so later requests are not held hostage.
                step.change().ending = Some(Some(TxState::Failed));
                step.change().error = Some(format!("rejected by the signer's policy: {reason}"));
                let noop = Draft::noop(self.chain_id, r.nonce, signer.address, market);
                match self.sign(signer, &noop, r, 0, "noop").await? {
                    Some(attempt) => attempt,
                    None => return Ok(step.finish()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let change = step.moves_to(TxState::Signed);
        change.gas_limit = Some(draft.gas_limit);
        change.attempt = Some(attempt);
        Ok(step.finish())
    }

    fn draft_of(&self, r: &TxRecord, price: Price) -> Result<Draft, PassError> {
        let bad = |what: &str| PassError::Ledger(format!("request {}: stored {what} does not parse", r.id));
        Ok(Draft {
            chain_id: self.chain_id,
            nonce: r.nonce,
            to: r.to.as_deref().map(|t| t.parse::<Address>()).transpose().map_err(|_| bad("to"))?,
            value: r.value.parse::<U256>().map_err(|_| bad("value"))?,
            data: r.data.parse::<Bytes>().map_err(|_| bad("data"))?,
            gas_limit: r.gas_limit.ok_or_else(|| bad("gas limit"))?,
            price,
        })
    }

    /// Signs `draft` as attempt `number`; `None` while a policy holds it.
    async fn sign(
        &self,
        signer: &NamedSigner,
        draft: &Draft,
        r: &TxRecord,
        number: u32,
        purpose: &str,
    ) -> Result<Option<Attempt>, SignerError> {
        let key = format!("{}:{number}:{purpose}", r.id);
        match draft.sign(signer.signer.as_ref(), &signer.name, &key).await? {
            Signing::Signed(signed) => {
                let (max_fee, priority) = draft.price.stored();
                Ok(Some(Attempt {
                    attempt: number,
                    purpose: purpose.into(),
                    hash: signed.hash.to_string(),
                    raw: signed.raw.to_string(),
                    gas_limit: draft.gas_limit,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: priority,
                    sent_ms: None,
                }))
            }
            Signing::Pending { request_id } => {
                tracing::info!(id = %r.id, request_id, "signature held for approval");
                Ok(None)
            }
        }
    }

    async fn broadcast(&self, live: &LiveTx) -> Result<B256, SendFailure> {
        let attempt = live.attempts.last().expect("filtered on a last attempt");
        let raw: Bytes = attempt.raw.parse().map_err(|_| {
            SendFailure::Refused(SendError::Other { code: 0, message: "stored bytes do not parse".into() })
        })?;
        self.rpc.send_raw(&raw).await
    }

    /// Reads a broadcast's answer into a change. The first send of an attempt is recorded (and moves a
    /// `signed` request to `submitted`); sending the same bytes again changes nothing in the ledger, so the
    /// re-pricing clock keeps running from the first send.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id))]
    async fn after_send(
        &self,
        live: &LiveTx,
        outcome: Result<B256, SendFailure>,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let Some(attempt) = live.attempts.last() else { return Ok(None) };
        let mut step = Step::new(live);
        let sent = |step: &mut Step| {
            if attempt.sent_ms.is_none() {
                let to = if step.record().state == TxState::Signed {
                    TxState::Submitted
                } else {
                    step.record().state
                };
                step.moves_to(to).sent = Some((attempt.attempt, now_ms()));
            }
        };
        match outcome {
            Ok(_) | Err(SendFailure::Refused(SendError::AlreadyKnown { .. })) => sent(&mut step),
            // Used on chain already: by this very attempt (a crash before we recorded the send), or by
            // another transaction. The watcher tells which from the receipts.
            Err(SendFailure::Refused(SendError::NonceTooLow { .. })) => sent(&mut step),
            Err(SendFailure::Refused(
                SendError::Underpriced { .. }
                | SendError::FeeCapTooLow { .. }
                | SendError::ReplacementUnderpriced { .. },
            )) => {
                self.manager.forget_market(self.chain_id);
                if let Some(change) = self.reprice(live, step, None).await? {
                    return Ok(Some(change));
                }
                return Ok(None);
            }
            Err(SendFailure::Refused(
                e @ (SendError::NonceTooHigh { .. }
                | SendError::InsufficientFunds { .. }
                | SendError::PoolFull { .. }),
            )) => {
                // Waits: the gap below is being filled, funds may arrive, the pool drains.
                tracing::warn!(id = %r.id, error = %e, "broadcast refused for now; will retry");
                return Ok(None);
            }
            Err(SendFailure::Refused(e)) => {
                // Cannot be sent as is: fail the request and fill its nonce.
                tracing::warn!(id = %r.id, error = %e, "broadcast refused");
                if r.origin == "raw" || attempt.purpose == "noop" {
                    step.moves_to(TxState::Failed).error = Some(e.to_string());
                    return Ok(step.finish());
                }
                step.change().ending = Some(Some(TxState::Failed));
                step.change().error = Some(format!("refused by the node: {e}"));
                return self.reprice(live, step, Some("noop")).await;
            }
            Err(SendFailure::Chain(e)) => return Err(e.into()),
        }
        Ok(step.finish())
    }

    /// A new attempt at a higher price (or the no-op for `purpose = noop`), stored by the caller's change
    /// and broadcast on the next pass.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %live.record.id, purpose = ?purpose))]
    async fn reprice(
        &self,
        live: &LiveTx,
        mut step: Step<'_>,
        purpose: Option<&str>,
    ) -> Result<Option<TxChange>, PassError> {
        let Some(signer) = &self.signer else { return Ok(step.finish()) };
        let r = &live.record;
        let Some(last) = live.attempts.last() else { return Ok(step.finish()) };
        let speed = Speed::parse(&r.speed).unwrap_or_default();
        let market = self.manager.market(self.chain_id, speed).await?;
        let previous = Price::from_stored(&last.max_fee_per_gas, last.max_priority_fee_per_gas.as_deref())
            .unwrap_or(market);
        let price = previous.bumped(market);
        let purpose = purpose.unwrap_or(if r.ending.is_some() { "noop" } else { &last.purpose });
        let draft = if purpose == "noop" {
            Draft::noop(self.chain_id, r.nonce, signer.address, price)
        } else {
            let mut draft = self.draft_of(r, price)?;
            draft.gas_limit = last.gas_limit;
            draft
        };
        let number = last.attempt + 1;
        match self.sign(signer, &draft, r, number, purpose).await {
            Ok(Some(attempt)) => {
                tracing::debug!(id = %r.id, attempt = number, purpose, max_fee = price.max_per_gas(), "re-priced");
                // A new attempt goes out on the next pass: back to `signed` if it was never accepted.
                let to = if r.state == TxState::Queued { TxState::Signed } else { r.state };
                step.moves_to(to).attempt = Some(attempt);
                Ok(step.finish())
            }
            Ok(None) => Ok(step.finish()),
            Err(e) => Err(e.into()),
        }
    }

    /// Settles, re-sends, re-prices and confirms what is out there.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, sender = %self.sender, live = live.len()))]
    async fn watch(&self, live: &[LiveTx]) -> Result<Vec<TxChange>, PassError> {
        // Inclusions are re-checked (reorgs, safe, finalized) once per CONFIRM_EVERY, not every pass: a busy
        // sender has many included transactions waiting for finality.
        let confirm = self.last_confirm.lock().map(|mut at| {
            let due = at.elapsed() >= CONFIRM_EVERY;
            if due {
                *at = std::time::Instant::now();
            }
            due
        });
        let confirm = confirm.unwrap_or(true);
        let out: Vec<&LiveTx> = live
            .iter()
            .filter(|l| match l.record.state {
                TxState::Submitted => true,
                TxState::Included | TxState::Safe => confirm,
                _ => false,
            })
            .collect();
        if let Ok(mut resent) = self.resent.lock() {
            // Only requests still out there are remembered.
            let submitted: std::collections::HashSet<&str> = live
                .iter()
                .filter(|l| l.record.state == TxState::Submitted)
                .map(|l| l.record.id.as_str())
                .collect();
            resent.retain(|id, _| submitted.contains(id.as_str()));
        }
        if out.is_empty() {
            return Ok(Vec::new());
        }
        // The heads first, then the counts: a transaction counted as mined is in a block up to `latest` (or
        // one mined in between, found by its hash).
        let heads = self.heads().await?;
        // Mined counts per sender (one for a signer; one per client for the raw worker).
        let mut senders: Vec<&str> = out.iter().map(|l| l.record.sender.as_str()).collect();
        senders.dedup();
        let mut mined = HashMap::new();
        for sender in senders {
            let address: Address =
                sender.parse().map_err(|_| PassError::Ledger(format!("bad sender {sender}")))?;
            mined.insert(sender.to_string(), self.rpc.nonce(address, false).await?);
        }
        let out: Vec<(&LiveTx, u64)> =
            out.into_iter().map(|l| (l, mined.get(&l.record.sender).copied().unwrap_or_default())).collect();
        let settling = out
            .iter()
            .filter(|(l, mined)| l.record.state == TxState::Submitted && l.record.nonce < *mined)
            .count();
        let known = Known {
            receipts: self.recent_receipts(settling as u64, heads.latest).await,
            canonical: self.canonical_hashes(out.iter().map(|(l, _)| *l)).await?,
        };
        let watches: Vec<_> =
            out.into_iter().map(|(l, mined)| self.watch_one(l, mined, heads, &known)).collect();
        let results = futures::stream::iter(watches).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut changes = Vec::new();
        for result in results {
            if let Some(change) = result? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// The receipts of the blocks mined since the last look (at most `SCAN_DEPTH` back), one call per block,
    /// when that is fewer calls than asking for each of the `settling` transactions by hash. Anything not
    /// found here is asked for by hash; a node without `eth_getBlockReceipts` is only ever asked by hash.
    async fn recent_receipts(&self, settling: u64, latest: u64) -> HashMap<B256, ReceiptSummary> {
        let mut receipts = HashMap::new();
        if settling == 0 || self.no_block_receipts.load(std::sync::atomic::Ordering::Relaxed) {
            return receipts;
        }
        let scanned = self.scanned.lock().ok().and_then(|s| *s).unwrap_or(0);
        let from = scanned.max(latest.saturating_sub(SCAN_DEPTH)) + 1;
        if from > latest || latest + 1 - from >= settling {
            return receipts;
        }
        let blocks: Vec<_> = (from..=latest).map(|number| self.rpc.block_receipts(number)).collect();
        let blocks = futures::stream::iter(blocks).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        for block in blocks {
            match block {
                Ok(Some(block)) => receipts.extend(block.into_iter().map(|r| (r.tx_hash, r))),
                Ok(None) => return receipts, // the node lags: the rest by hash, and the range again
                Err(e) => {
                    if matches!(e, gemgate_domain::ChainError::Rpc { .. }) {
                        tracing::info!(chain = self.chain_id, error = %e, "no eth_getBlockReceipts; receipts by hash");
                        self.no_block_receipts.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    return receipts;
                }
            }
        }
        if let Ok(mut scanned) = self.scanned.lock() {
            *scanned = Some(latest);
        }
        tracing::debug!(
            chain = self.chain_id,
            from,
            latest,
            settling,
            receipts = receipts.len(),
            "receipts by block"
        );
        receipts
    }

    /// The hash of each block that holds an included request being checked, one call per block.
    async fn canonical_hashes<'a>(
        &self,
        out: impl Iterator<Item = &'a LiveTx>,
    ) -> Result<HashMap<u64, Option<B256>>, PassError> {
        let mut numbers: Vec<u64> = out
            .filter(|l| matches!(l.record.state, TxState::Included | TxState::Safe))
            .filter_map(|l| l.record.block_number)
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let blocks: Vec<_> = numbers
            .iter()
            .map(|n| async move { (*n, self.rpc.block(BlockNumberOrTag::Number(*n)).await) })
            .collect();
        let blocks = futures::stream::iter(blocks).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut hashes = HashMap::new();
        for (number, block) in blocks {
            hashes.insert(number, block?.map(|b| b.1));
        }
        Ok(hashes)
    }

    /// When the request's last attempt was last sent again by this worker.
    fn resent_at(&self, id: &str) -> Option<u64> {
        self.resent.lock().ok().and_then(|resent| resent.get(id).copied())
    }

    /// The latest, safe and finalized block numbers (by depth where the node has no such tags).
    async fn heads(&self) -> Result<Heads, PassError> {
        let latest = self.rpc.block(BlockNumberOrTag::Latest).await?.map_or(0, |b| b.0);
        let safe = self.rpc.block(BlockNumberOrTag::Safe).await?.map(|b| b.0);
        let finalized = self.rpc.block(BlockNumberOrTag::Finalized).await?.map(|b| b.0);
        // A node without the tags: the chain's configured depth stands in for both.
        let deep = latest.saturating_sub(self.manager.confirmations(self.chain_id));
        Ok(Heads { latest, safe: safe.unwrap_or(deep), finalized: finalized.unwrap_or(deep) })
    }

    async fn watch_one(
        &self,
        live: &LiveTx,
        mined: u64,
        heads: Heads,
        known: &Known,
    ) -> Result<Option<TxChange>, PassError> {
        let r = &live.record;
        let mut step = Step::new(live);
        match r.state {
            TxState::Submitted if r.nonce < mined => {
                // Settled on chain: find which of our attempts (newest first) holds the nonce.
                let mut hashes = Vec::new();
                for attempt in live.attempts.iter().rev() {
                    let hash: B256 = attempt
                        .hash
                        .parse()
                        .map_err(|_| PassError::Ledger(format!("bad hash in {}", r.id)))?;
                    if let Some(receipt) = known.receipts.get(&hash) {
                        return self.settled(step, attempt, receipt.clone()).await;
                    }
                    hashes.push((attempt, hash));
                }
                for (attempt, hash) in hashes {
                    if let Some(receipt) = self.rpc.receipt(hash).await? {
                        return self.settled(step, attempt, receipt).await;
                    }
                }
                // No receipt of ours yet. A node can report the new count a moment before it serves the
                // receipt (or one node of a pool lags another): only a nonce used for a while without a
                // receipt of ours is someone else's.
                let last_sent = live.attempts.iter().filter_map(|a| a.sent_ms).max().unwrap_or(0);
                let last_sent = last_sent.max(self.resent_at(&r.id).unwrap_or(0));
                if now_ms().saturating_sub(last_sent) < REPLACED_AFTER.as_millis() as u64 {
                    return Ok(None);
                }
                step.moves_to(TxState::Replaced).error = Some(format!(
                    "nonce {} was used on chain by a transaction gemgate did not send",
                    r.nonce
                ));
                Ok(step.finish())
            }
            TxState::Submitted => {
                let Some(last) = live.attempts.last() else { return Ok(None) };
                let options = &self.manager.options;
                // The re-pricing clock runs from the attempt's first send; the re-broadcast clock from the
                // last time the same bytes went out.
                let since = now_ms().saturating_sub(last.sent_ms.unwrap_or(0));
                let since_resent = self.resent_at(&r.id).map_or(since, |at| now_ms().saturating_sub(at));
                // A cancel or an expiry: replace with the no-op at once.
                let expired = r.valid_until_ms.is_some_and(|until| until <= now_ms());
                if self.signer.is_some() && (r.ending.is_some() || expired) && last.purpose != "noop" {
                    if r.ending.is_none() {
                        step.change().ending = Some(Some(TxState::Expired));
                    }
                    return self.reprice(live, step, Some("noop")).await;
                }
                if last.sent_ms.is_none() {
                    // Stored by a re-pricing, not sent yet.
                    let outcome = self.broadcast(live).await;
                    return self.after_send(live, outcome).await;
                }
                let bumps = live.attempts.len().saturating_sub(1) as u32;
                let bump_wait = fees::bump_after(bumps, options.bump_after, options.max_bump_after);
                if self.signer.is_some() && since >= bump_wait.as_millis() as u64 {
                    return self.reprice(live, step, None).await;
                }
                if since.min(since_resent) >= options.rebroadcast_after.as_millis() as u64 {
                    let hash: B256 =
                        last.hash.parse().map_err(|_| PassError::Ledger(format!("bad hash in {}", r.id)))?;
                    if !self.rpc.knows(hash).await? {
                        tracing::info!(id = %r.id, hash = %last.hash, "dropped by the node; sending again");
                        let labels = GapLabels { chain_id: self.chain_id, how: "rebroadcast" };
                        self.manager.metrics.gaps_repaired.get_or_create(&labels).inc();
                    }
                    // Sent again either way: a node that knows it answers "already known".
                    let outcome = self.broadcast(live).await;
                    if let Ok(mut resent) = self.resent.lock() {
                        resent.insert(r.id.clone(), now_ms());
                    }
                    return self.after_send(live, outcome).await;
                }
                Ok(None)
            }
            TxState::Included | TxState::Safe => {
                let (Some(number), Some(hash)) = (r.block_number, r.block_hash.as_deref()) else {
                    return Ok(None);
                };
                let canonical = match known.canonical.get(&number) {
                    Some(canonical) => *canonical,
                    None => self.rpc.block(BlockNumberOrTag::Number(number)).await?.map(|b| b.1),
                };
                if canonical.map(|h| h.to_string()).as_deref() != Some(hash) {
                    // A reorg took its block: back to submitted, and out again with the same bytes.
                    tracing::warn!(id = %r.id, block = number, "block left the chain; sending again");
                    let included =
                        live.attempts.iter().find(|a| Some(a.hash.as_str()) == r.tx_hash.as_deref());
                    let change = step.moves_to(TxState::Submitted);
                    change.inclusion = Some(None);
                    if let Some(attempt) = included {
                        if let Ok(raw) = attempt.raw.parse::<Bytes>() {
                            // Any answer will do: the next pass reads the outcome from receipts.
                            let _ = self.rpc.send_raw(&raw).await;
                        }
                        change.sent = Some((attempt.attempt, now_ms()));
                    }
                    return Ok(step.finish());
                }
                if number <= heads.finalized {
                    step.moves_to(TxState::Finalized);
                } else if number <= heads.safe && r.state == TxState::Included {
                    step.moves_to(TxState::Safe);
                }
                Ok(step.finish())
            }
            _ => Ok(None),
        }
    }

    /// A receipt of one of our attempts: included (or failed with the revert reason), or the end the
    /// no-op was sent for.
    async fn settled(
        &self,
        mut step: Step<'_>,
        attempt: &Attempt,
        receipt: ReceiptSummary,
    ) -> Result<Option<TxChange>, PassError> {
        let r = step.record().clone();
        let summary = serde_json::json!({
            "status": if receipt.success { "success" } else { "reverted" },
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price.to_string(),
            "fee_paid": (U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)).to_string(),
        });
        let inclusion = Inclusion {
            tx_hash: attempt.hash.clone(),
            block_number: receipt.block_number,
            block_hash: receipt.block_hash.to_string(),
            receipt: summary.to_string(),
        };
        let to = if attempt.purpose == "noop" {
            r.ending.unwrap_or(TxState::Cancelled)
        } else if receipt.success {
            TxState::Included
        } else {
            let reason = match self.draft_of(&r, Price::Legacy { gas_price: 0 }) {
                Ok(draft) => {
                    let mut call = TransactionRequest::default()
                        .from(r.sender.parse().unwrap_or_default())
                        .value(draft.value)
                        .input(draft.data.into())
                        .gas_limit(attempt.gas_limit);
                    if let Some(to) = draft.to {
                        call = call.to(to);
                    }
                    self.rpc.revert_reason(&call, receipt.block_number.saturating_sub(1)).await
                }
                Err(_) => None,
            };
            step.change().error =
                Some(format!("reverted: {}", reason.unwrap_or_else(|| "no reason given".into())));
            TxState::Failed
        };
        step.moves_to(to).inclusion = Some(Some(inclusion));
        Ok(step.finish())
    }
}

#[derive(Debug, Clone, Copy)]
struct Heads {
    latest: u64,
    safe: u64,
    finalized: u64,
}

/// What a pass learned in bulk before looking at each request.
struct Known {
    /// Receipts of recent blocks by transaction hash (may be empty: then receipts are asked for by hash).
    receipts: HashMap<B256, ReceiptSummary>,
    /// The canonical hash of each block holding an included request (`None`: no such block now).
    canonical: HashMap<u64, Option<B256>>,
}

async fn wait(shutdown: &mut tokio::sync::watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.changed() => {}
    }
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] gemgate_domain::ChainError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Submit(#[from] crate::manager::SubmitError),
    #[error("{0}")]
    Ledger(String),
}

/// Starts every worker of `manager`: one per (signer, chain it may send on), one per chain for
/// client-signed transactions. They stop when `shutdown` turns true.
pub fn spawn_all(
    manager: &Arc<TxManager>,
    holder: &str,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for signer in manager.signers.values() {
        for chain_id in signer.chains.iter().filter(|c| manager.chains.contains_key(c)) {
            tasks.push(tokio::spawn(run_sender(
                manager.clone(),
                *chain_id,
                signer.clone(),
                holder.to_string(),
                shutdown.clone(),
            )));
        }
    }
    for chain_id in manager.chains.keys() {
        tasks.push(tokio::spawn(run_raw(manager.clone(), *chain_id, holder.to_string(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(count_states(manager.clone(), shutdown.clone())));
    tasks
}

/// Keeps the `requests` gauge (requests in the ledger by state) current until shutdown.
async fn count_states(manager: Arc<TxManager>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match manager.store.transaction_states().await {
            Ok(counts) => {
                for state in TxState::ALL {
                    let count = counts.iter().find(|(s, _)| s == state.as_str()).map_or(0, |(_, n)| *n);
                    manager
                        .metrics
                        .requests
                        .get_or_create(&StateLabel { state: state.as_str() })
                        .set(count as i64);
                }
            }
            Err(error) => tracing::debug!(%error, "counting requests by state failed"),
        }
        wait(&mut shutdown, GAUGE_EVERY).await;
    }
}
