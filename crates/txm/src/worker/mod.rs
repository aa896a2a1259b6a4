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
//!
//! Each step is its own file: `sign` (sign queued requests, re-price), `send` (broadcast and read the
//! node's answer), `watch` (settle, re-send, confirm); `change` builds the ledger change a step makes. A
//! pass (`SenderWorker::step`) runs them in order and commits what they decided under the lease.

mod change;
mod send;
mod sign;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gemgate_domain::ledger::{Attempt, Lease, LiveTx, TxChange};
use gemgate_domain::ports::Broadcaster;
use gemgate_domain::{SignerError, StoreError, TxState};
use tokio::time::Instant;

use crate::manager::TxManager;
use crate::metrics::{SignerLabels, StateLabel};
use crate::signers::NamedSigner;

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

/// What one pass did. A busy pass (it signed or changed something) is followed by another at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// The live requests the pass looked at.
    pub live: usize,
    /// Requests signed (their first attempt, or the no-op that fills their nonce).
    pub signed: usize,
    /// Signed attempts broadcast for the first time.
    pub sent: usize,
    /// Changes written after the broadcasts and the watch (new states, attempts, sends).
    pub changes: usize,
}

impl PassOutcome {
    pub fn busy(&self) -> bool {
        self.signed > 0 || self.changes > 0
    }
}

/// The live requests as `changes` (all applied) leave them, without reading them again.
fn with_changes(live: Vec<LiveTx>, changes: &[TxChange]) -> Vec<LiveTx> {
    let by_id: HashMap<&str, &TxChange> = changes.iter().map(|c| (c.id.as_str(), c)).collect();
    live.into_iter()
        .map(|mut l| {
            if let Some(change) = by_id.get(l.record.id.as_str()) {
                l.apply(change);
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
    rpc: Arc<dyn Broadcaster>,
    /// `None`: the client-signed transactions of the chain (nothing is signed, priced or filled).
    signer: Option<NamedSigner>,
    /// The lease's name: the signer's address, or `raw`.
    sender: String,
    chain_id: u64,
    holder: String,
    last_confirm: std::sync::Mutex<Instant>,
    /// When each request's last attempt was last sent again (request id → Unix ms). In memory only: after a
    /// restart everything is simply sent again once.
    resent: std::sync::Mutex<HashMap<String, u64>>,
    /// The last block whose receipts were read in bulk.
    scanned: std::sync::Mutex<Option<u64>>,
    /// Set when the node answered `eth_getBlockReceipts` with an error: receipts by hash only.
    no_block_receipts: std::sync::atomic::AtomicBool,
    /// When the signer's balance gauge was last read.
    last_gauges: std::sync::Mutex<Option<Instant>>,
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
            last_confirm: std::sync::Mutex::new(Instant::now()),
            resent: std::sync::Mutex::new(HashMap::new()),
            scanned: std::sync::Mutex::new(None),
            no_block_receipts: std::sync::atomic::AtomicBool::new(false),
            last_gauges: std::sync::Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.manager.clock.now_ms()
    }

    async fn run(&mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let options = self.manager.options.clone();
        let ttl = options.lease_ttl.as_millis() as u64;
        let mut failures = 0u32;
        while !*shutdown.borrow() {
            let lease = match self
                .manager
                .store
                .take_lease(self.chain_id, &self.sender, &self.holder, self.now_ms(), ttl)
                .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    tracing::debug!(sender = %self.sender, chain = self.chain_id, "lease held by another worker");
                    wait(&mut shutdown, options.lease_ttl / 6).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(sender = %self.sender, error = %e, "could not take the lease");
                    wait(&mut shutdown, options.poll_interval).await;
                    continue;
                }
            };
            let busy = match self.step(&lease).await {
                Ok(outcome) => {
                    failures = 0;
                    outcome.busy()
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
                        self.now_ms(),
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
                *last = Some(Instant::now());
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

    /// One pass over the live requests: sign, broadcast, watch, then commit under `lease`.
    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = self.chain_id, sender = %self.sender, token = lease.token))]
    async fn step(&self, lease: &Lease) -> Result<PassOutcome, PassError> {
        let store = &self.manager.store;
        let sender = self.signer.as_ref().map(|_| self.sender.as_str());
        let started = Instant::now();
        let mut live = store.live_work(self.chain_id, sender).await?;
        let read = started.elapsed();
        if live.is_empty() {
            self.signer_gauges(&[], &[]).await;
            return Ok(PassOutcome::default());
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
                let applied = store.apply_changes(Some(lease), self.now_ms(), ttl, &changes).await?;
                self.manager.metrics.committed(self.chain_id, &live, &changes, self.now_ms());
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
        let outcome = PassOutcome { live: live.len(), signed, sent: to_send.len(), changes: changes.len() };
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
        store.apply_changes(Some(lease), self.now_ms(), ttl, &changes).await?;
        self.manager.metrics.committed(self.chain_id, &live, &changes, self.now_ms());
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
        Ok(outcome)
    }
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
