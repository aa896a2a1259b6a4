//! The worker's steps on an in-memory ledger and a scripted chain, with tokio's clock paused so the
//! re-pricing, re-broadcast and replacement clocks are moved by the test, not waited for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use async_trait::async_trait;
use gemgate_domain::broadcast::{CallRequest, FeeQuote, ReceiptSummary, SendFailure};
use gemgate_domain::ledger::{
    Accepted, Attempt, LIVE_STATES, Lease, LiveTx, NewTransaction, RawSubmission, TxChange, TxListQuery,
    TxPage, TxRecord,
};
use gemgate_domain::ports::{Broadcaster, Ledger, TxPayload};
use gemgate_domain::{ChainError, FinalityLevel, SendError, StoreError, TxState};

use super::{PassError, PassOutcome, SenderWorker};
use crate::clock::Clock;
use crate::draft::decode;
use crate::manager::{TxManager, TxmOptions, address_text};
use crate::signers::{LocalSigner, NamedSigner};

const CHAIN: u64 = 31_337;
/// The paused clock starts here (Unix ms).
const START: u64 = 1_800_000_000_000;
const BASE_FEE: u128 = 1_000_000_000;
const TIP: u128 = 2_000_000;

/// A ledger in memory with the SQL ledger's rules: live work in nonce order, leases with fencing tokens,
/// changes applied only at their revision and only along lifecycle edges, an announcement per state move.
#[derive(Debug, Default)]
struct MemLedger {
    state: Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    requests: BTreeMap<String, LiveTx>,
    /// (holder, token, expires at, Unix ms) per (chain, sender).
    leases: HashMap<(u64, String), (String, u64, u64)>,
    /// Every state a change announced, in commit order.
    announced: Vec<(String, TxState)>,
}

fn not_here(what: &str) -> StoreError {
    StoreError::Database { message: format!("{what} is not part of the worker's fake ledger") }
}

impl MemLedger {
    fn put(&self, live: LiveTx) {
        self.state.lock().unwrap().requests.insert(live.record.id.clone(), live);
    }

    fn get(&self, id: &str) -> LiveTx {
        self.state.lock().unwrap().requests.get(id).cloned().expect("request in the ledger")
    }

    fn announced(&self, id: &str) -> Vec<TxState> {
        let state = self.state.lock().unwrap();
        state.announced.iter().filter(|(i, _)| i == id).map(|(_, s)| *s).collect()
    }
}

#[async_trait]
impl Ledger for MemLedger {
    async fn accept(
        &self,
        _requests: &[(NewTransaction, u64)],
        _payload: &TxPayload,
    ) -> Result<Vec<Accepted>, StoreError> {
        Err(not_here("accepting"))
    }

    async fn accept_raw(&self, _raw: &RawSubmission, _payload: &TxPayload) -> Result<Accepted, StoreError> {
        Err(not_here("accepting"))
    }

    async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        Ok(self.state.lock().unwrap().requests.get(id).map(|l| l.record.clone()))
    }

    async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        Ok(self.state.lock().unwrap().requests.get(id).map(|l| l.attempts.clone()).unwrap_or_default())
    }

    async fn live_work(&self, chain_id: u64, sender: Option<&str>) -> Result<Vec<LiveTx>, StoreError> {
        let state = self.state.lock().unwrap();
        let mut live: Vec<LiveTx> = state
            .requests
            .values()
            .filter(|l| l.record.chain_id == chain_id && LIVE_STATES.contains(&l.record.state))
            .filter(|l| match sender {
                Some(sender) => l.record.sender == sender && l.record.origin != "raw",
                None => l.record.origin == "raw",
            })
            .cloned()
            .collect();
        live.sort_by(|a, b| (&a.record.sender, a.record.nonce).cmp(&(&b.record.sender, b.record.nonce)));
        Ok(live)
    }

    async fn take_lease(
        &self,
        chain_id: u64,
        sender: &str,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let entry = state.leases.entry((chain_id, sender.to_string()));
        let token = match entry {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert((holder.to_string(), 1, now_ms + ttl_ms));
                1
            }
            std::collections::hash_map::Entry::Occupied(mut occupied) => {
                let (current, token, expires) = occupied.get().clone();
                if current != holder && expires >= now_ms {
                    return Ok(None);
                }
                let token = if current == holder { token } else { token + 1 };
                occupied.insert((holder.to_string(), token, now_ms + ttl_ms));
                token
            }
        };
        Ok(Some(Lease { chain_id, sender: sender.to_string(), token }))
    }

    async fn apply_changes(
        &self,
        lease: Option<&Lease>,
        now_ms: u64,
        ttl_ms: u64,
        changes: &[TxChange],
    ) -> Result<usize, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(lease) = lease {
            let held = state.leases.get_mut(&(lease.chain_id, lease.sender.clone()));
            match held {
                Some((_, token, expires)) if *token == lease.token => *expires = now_ms + ttl_ms,
                other => {
                    let current = other.map_or(0, |(_, token, _)| *token);
                    return Err(StoreError::Fenced { resource: lease.sender.clone(), current });
                }
            }
        }
        if let Some(bad) = changes.iter().find(|c| c.from != c.to && !c.from.can_become(c.to)) {
            return Err(StoreError::Database {
                message: format!("{}: {:?} -> {:?} is not a lifecycle edge", bad.id, bad.from, bad.to),
            });
        }
        let mut applied = 0;
        for change in changes {
            let Some(live) = state.requests.get_mut(&change.id) else { continue };
            if live.record.revision != change.revision {
                continue;
            }
            live.apply(change);
            applied += 1;
            if change.to != change.from {
                assert!(change.payload.is_some(), "a state move carries its announcement");
                state.announced.push((change.id.clone(), change.to));
            }
        }
        Ok(applied)
    }

    async fn request_ending(&self, id: &str, ending: TxState) -> Result<Option<TxRecord>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(live) = state.requests.get_mut(id) else { return Ok(None) };
        let open = matches!(live.record.state, TxState::Queued | TxState::Signed | TxState::Submitted);
        if live.record.origin != "raw" && live.record.ending.is_none() && open {
            live.record.ending = Some(ending);
        }
        Ok(Some(live.record.clone()))
    }

    async fn request_speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(live) = state.requests.get_mut(id) else { return Ok(None) };
        if matches!(live.record.state, TxState::Signed | TxState::Submitted) {
            for attempt in live.attempts.iter_mut().filter(|a| a.sent_ms.is_some()) {
                attempt.sent_ms = Some(0);
            }
        }
        Ok(Some(live.record.clone()))
    }

    async fn list(&self, _query: &TxListQuery) -> Result<TxPage, StoreError> {
        Err(not_here("listing"))
    }

    async fn transaction_states(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Err(not_here("counting"))
    }

    async fn transaction_relaying(&self, _: &str) -> Result<Option<TxRecord>, StoreError> {
        Err(not_here("relayed requests"))
    }

    async fn relayed(&self, _: &str) -> Result<Vec<gemgate_domain::relay::RelayedCall>, StoreError> {
        Err(not_here("relayed requests"))
    }
}

/// A chain whose answers the test writes: what it mined, what its pool holds, which refusal comes next.
#[derive(Debug, Default)]
struct ScriptedChain {
    state: Mutex<ChainState>,
}

#[derive(Debug, Default)]
struct ChainState {
    /// Mined transaction counts.
    mined: HashMap<Address, u64>,
    /// What the node's pool holds, by hash.
    pool: HashMap<B256, Bytes>,
    /// Every `eth_sendRawTransaction`, in order.
    received: Vec<Bytes>,
    /// Answers to the next broadcasts, before any is accepted.
    refusals: std::collections::VecDeque<SendError>,
    receipts: HashMap<B256, ReceiptSummary>,
    /// The canonical chain: block number to hash.
    blocks: BTreeMap<u64, B256>,
    safe: Option<u64>,
    finalized: Option<u64>,
}

impl ScriptedChain {
    fn received(&self) -> Vec<Bytes> {
        self.state.lock().unwrap().received.clone()
    }

    fn refuse_next(&self, refusal: SendError) {
        self.state.lock().unwrap().refusals.push_back(refusal);
    }

    /// Mines the transaction `hash` (which must have been broadcast) into block `number`.
    fn mine(&self, hash: &str, number: u64, success: bool) {
        let hash: B256 = hash.parse().unwrap();
        let mut state = self.state.lock().unwrap();
        let raw = state.received.iter().find(|raw| decode(raw).unwrap().hash == hash).cloned();
        let decoded = decode(&raw.expect("mined only what was broadcast")).unwrap();
        state.pool.remove(&hash);
        state.mined.insert(decoded.sender, decoded.nonce + 1);
        let block_hash = *state.blocks.entry(number).or_insert(B256::repeat_byte(number as u8));
        state.receipts.insert(
            hash,
            ReceiptSummary {
                tx_hash: hash,
                success,
                block_number: number,
                block_hash,
                gas_used: 21_000,
                effective_gas_price: BASE_FEE + TIP,
            },
        );
    }

    /// Another transaction of `sender` used its nonces up to `count` (no receipt of ours).
    fn taken(&self, sender: Address, count: u64) {
        self.state.lock().unwrap().mined.insert(sender, count);
    }

    /// Block `number` is replaced by another: its receipts are gone and their nonces unused again.
    fn reorg(&self, number: u64, sender: Address, count: u64) {
        let mut state = self.state.lock().unwrap();
        state.blocks.insert(number, B256::repeat_byte(0xee));
        state.receipts.retain(|_, r| r.block_number != number);
        state.mined.insert(sender, count);
    }

    fn tags(&self, safe: Option<u64>, finalized: Option<u64>) {
        let mut state = self.state.lock().unwrap();
        state.safe = safe;
        state.finalized = finalized;
    }
}

#[async_trait]
impl Broadcaster for ScriptedChain {
    fn chain_id(&self) -> u64 {
        CHAIN
    }

    async fn nonce(&self, address: Address, _pending: bool) -> Result<u64, ChainError> {
        Ok(self.state.lock().unwrap().mined.get(&address).copied().unwrap_or(0))
    }

    async fn balance(&self, _address: Address) -> Result<U256, ChainError> {
        Ok(U256::from(10u128.pow(20)))
    }

    async fn fees(&self, blocks: u64, percentiles: &[f64]) -> Result<FeeQuote, ChainError> {
        let rewards = vec![vec![TIP; percentiles.len()]; blocks as usize];
        Ok(FeeQuote::Eip1559 { next_base_fee: BASE_FEE, rewards })
    }

    async fn estimate_gas(&self, _call: &CallRequest) -> Result<u64, SendFailure> {
        Ok(21_000)
    }

    async fn revert_reason(&self, _call: &CallRequest, _block: u64) -> Option<String> {
        Some("Error(scripted)".into())
    }

    async fn send_raw(&self, raw: &Bytes) -> Result<B256, SendFailure> {
        let mut state = self.state.lock().unwrap();
        state.received.push(raw.clone());
        if let Some(refusal) = state.refusals.pop_front() {
            return Err(SendFailure::Refused(refusal));
        }
        let hash = decode(raw)
            .map_err(|e| SendFailure::Refused(SendError::Other { code: -32000, message: e.to_string() }))?
            .hash;
        state.pool.insert(hash, raw.clone());
        Ok(hash)
    }

    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptSummary>, ChainError> {
        Ok(self.state.lock().unwrap().receipts.get(&hash).cloned())
    }

    async fn block_receipts(&self, number: u64) -> Result<Option<Vec<ReceiptSummary>>, ChainError> {
        let state = self.state.lock().unwrap();
        if !state.blocks.contains_key(&number) {
            return Ok(None);
        }
        Ok(Some(state.receipts.values().filter(|r| r.block_number == number).cloned().collect()))
    }

    async fn knows(&self, hash: B256) -> Result<bool, ChainError> {
        let state = self.state.lock().unwrap();
        Ok(state.pool.contains_key(&hash) || state.receipts.contains_key(&hash))
    }

    async fn head(&self, level: FinalityLevel) -> Result<Option<(u64, B256)>, ChainError> {
        let state = self.state.lock().unwrap();
        let number = match level {
            FinalityLevel::Latest => state.blocks.keys().last().copied().or(Some(0)),
            FinalityLevel::Safe => state.safe,
            FinalityLevel::Finalized => state.finalized,
        };
        Ok(number.map(|n| (n, state.blocks.get(&n).copied().unwrap_or_default())))
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self.state.lock().unwrap().blocks.get(&number).copied())
    }
}

/// A worker for one local signer over the fake ledger and the scripted chain, holding the sender's lease.
struct Rig {
    ledger: Arc<MemLedger>,
    chain: Arc<ScriptedChain>,
    worker: SenderWorker,
    lease: Lease,
    signer: Address,
}

async fn rig(options: TxmOptions) -> Rig {
    let key = LocalSigner::from_hex("ops", &format!("0x{}", "11".repeat(32))).unwrap();
    let signer = NamedSigner {
        name: "ops".into(),
        chains: vec![CHAIN],
        address: gemgate_domain::ports::Signer::address(&key),
        signer: Arc::new(key),
    };
    let address = signer.address;
    let ledger = Arc::new(MemLedger::default());
    let chain = Arc::new(ScriptedChain::default());
    let chains = HashMap::from([(CHAIN, chain.clone() as Arc<dyn Broadcaster>)]);
    let signers = HashMap::from([("ops".to_string(), signer.clone())]);
    let manager =
        TxManager::new(ledger.clone(), chains, signers, options).with_clock(Clock::tokio_from(START));
    let sender = address_text(address);
    let worker = SenderWorker::new(Arc::new(manager), CHAIN, Some(signer), sender.clone(), "worker-a".into())
        .expect("the chain is configured");
    let ttl = worker.manager.options.lease_ttl.as_millis() as u64;
    let lease = ledger.take_lease(CHAIN, &sender, "worker-a", START, ttl).await.unwrap().unwrap();
    Rig { ledger, chain, worker, lease, signer: address }
}

impl Rig {
    /// Queues a transfer of 1 wei at `nonce`; returns its id.
    fn queue(&self, nonce: u64, shape: impl FnOnce(&mut TxRecord)) -> String {
        let mut record = TxRecord::new(CHAIN, &address_text(self.signer), nonce, "api", TxState::Queued);
        record.signer = "ops".into();
        record.to = Some(address_text(Address::repeat_byte(0x42)));
        record.value = "1".into();
        record.gas_limit = Some(21_000);
        shape(&mut record);
        let id = record.id.clone();
        self.ledger.put(LiveTx { record, attempts: Vec::new(), created_ms: START });
        id
    }

    async fn step(&self) -> PassOutcome {
        self.worker.step(&self.lease).await.expect("the pass succeeds")
    }

    fn state(&self, id: &str) -> TxState {
        self.ledger.get(id).record.state
    }

    fn attempts(&self, id: &str) -> Vec<Attempt> {
        self.ledger.get(id).attempts
    }
}

async fn advance(duration: Duration) {
    tokio::time::advance(duration).await;
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_is_signed_stored_and_broadcast_in_one_pass() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});

    let outcome = rig.step().await;
    assert_eq!((outcome.signed, outcome.sent), (1, 1), "{outcome:?}");
    assert!(outcome.busy());
    assert_eq!(rig.state(&id), TxState::Submitted);
    assert_eq!(rig.ledger.announced(&id), [TxState::Signed, TxState::Submitted]);
    let attempts = rig.attempts(&id);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].sent_ms, Some(START), "the re-pricing clock starts at the first send");

    let received = rig.chain.received();
    assert_eq!(received.len(), 1);
    let sent = decode(&received[0]).unwrap();
    assert_eq!((sent.sender, sent.nonce, sent.chain_id), (rig.signer, 0, Some(CHAIN)));
    assert_eq!(sent.to, Some(Address::repeat_byte(0x42)));
    assert_eq!(sent.hash.to_string(), attempts[0].hash, "the stored hash is the one broadcast");
}

#[tokio::test(start_paused = true)]
async fn a_receipt_includes_it_and_the_chain_tags_finalize_it() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;
    rig.chain.mine(&rig.attempts(&id)[0].hash, 5, true);

    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!((record.state, record.block_number), (TxState::Included, Some(5)));
    assert_eq!(record.tx_hash.as_deref(), Some(rig.attempts(&id)[0].hash.as_str()));
    let receipt: serde_json::Value = serde_json::from_str(record.receipt.as_deref().unwrap()).unwrap();
    assert_eq!(receipt["status"], "success");

    // Safe and finalized come from the chain's tags, checked at most once a second.
    rig.chain.tags(Some(5), None);
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Included, "inclusions are re-checked once a second, not every pass");
    advance(Duration::from_secs(1)).await;
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Safe);
    rig.chain.tags(Some(5), Some(5));
    advance(Duration::from_secs(1)).await;
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Finalized);
    assert_eq!(
        rig.ledger.announced(&id),
        [TxState::Signed, TxState::Submitted, TxState::Included, TxState::Safe, TxState::Finalized]
    );
    assert_eq!(rig.step().await, PassOutcome::default(), "a finalized request is no longer live work");
}

#[tokio::test(start_paused = true)]
async fn a_pending_transaction_is_re_priced_only_when_its_clock_runs_out() {
    let options = TxmOptions::default();
    let (bump_after, rebroadcast_after) = (options.bump_after, options.rebroadcast_after);
    let rig = rig(options).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;

    // Before the re-pricing clock runs out the same bytes are only sent again (the node is asked first).
    advance(rebroadcast_after).await;
    rig.step().await;
    assert_eq!(rig.attempts(&id).len(), 1, "no new attempt before bump_after");
    assert_eq!(rig.chain.received().len(), 2, "re-broadcast after rebroadcast_after");
    assert_eq!(rig.chain.received()[1], rig.chain.received()[0], "the very same bytes");

    advance(bump_after - rebroadcast_after - Duration::from_millis(1)).await;
    rig.step().await;
    assert_eq!(rig.attempts(&id).len(), 1, "one millisecond before bump_after: still one attempt");

    advance(Duration::from_millis(1)).await;
    rig.step().await;
    let attempts = rig.attempts(&id);
    assert_eq!(attempts.len(), 2, "re-priced at bump_after");
    let fee = |a: &Attempt| a.max_fee_per_gas.parse::<u128>().unwrap();
    let tip = |a: &Attempt| a.max_priority_fee_per_gas.as_deref().unwrap().parse::<u128>().unwrap();
    assert!(fee(&attempts[1]) * 10 >= fee(&attempts[0]) * 11, "fee cap +10%: {attempts:?}");
    assert!(tip(&attempts[1]) * 10 >= tip(&attempts[0]) * 11, "priority fee +10%: {attempts:?}");
    assert_eq!(attempts[1].sent_ms, None, "stored before it is broadcast");

    rig.step().await;
    assert_eq!(rig.attempts(&id)[1].sent_ms, Some(START + bump_after.as_millis() as u64));
    let last = decode(rig.chain.received().last().unwrap()).unwrap();
    assert_eq!(
        (last.nonce, last.hash.to_string()),
        (0, attempts[1].hash.clone()),
        "the replacement went out"
    );

    // The replacement is mined: the request is included with its hash.
    rig.chain.mine(&attempts[1].hash, 3, true);
    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!(record.state, TxState::Included);
    assert_eq!(record.tx_hash, Some(attempts[1].hash.clone()));
}

#[tokio::test(start_paused = true)]
async fn the_second_re_pricing_waits_twice_as_long() {
    let options = TxmOptions { rebroadcast_after: Duration::from_secs(3600), ..TxmOptions::default() };
    let bump_after = options.bump_after;
    let rig = rig(options).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;
    advance(bump_after).await;
    rig.step().await; // re-priced
    rig.step().await; // and sent
    assert_eq!(rig.attempts(&id).len(), 2);

    advance(bump_after * 2 - Duration::from_millis(1)).await;
    rig.step().await;
    assert_eq!(rig.attempts(&id).len(), 2, "the wait doubles with each re-pricing");
    advance(Duration::from_millis(1)).await;
    rig.step().await;
    assert_eq!(rig.attempts(&id).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_underpriced_refusal_re_prices_at_once() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.chain.refuse_next(SendError::Underpriced { message: "transaction underpriced".into() });

    rig.step().await;
    let attempts = rig.attempts(&id);
    assert_eq!(rig.state(&id), TxState::Signed, "refused: not submitted");
    assert_eq!(attempts.len(), 2, "a re-priced attempt, without waiting for bump_after");
    assert!(
        attempts[1].max_fee_per_gas.parse::<u128>().unwrap() > attempts[0].max_fee_per_gas.parse().unwrap()
    );

    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Submitted);
    assert_eq!(decode(rig.chain.received().last().unwrap()).unwrap().hash.to_string(), attempts[1].hash);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_for_now_holds_the_request_and_sends_it_again() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.chain.refuse_next(SendError::InsufficientFunds { message: "insufficient funds".into() });

    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Signed, "held, not failed");
    assert_eq!(rig.attempts(&id).len(), 1, "same bytes, no re-pricing");
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Submitted, "sent once funds arrive");
    assert_eq!(rig.chain.received().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_fails_the_request_and_fills_its_nonce_with_a_no_op() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    let next = rig.queue(1, |_| {});
    rig.chain.refuse_next(SendError::GasLimitTooHigh { message: "exceeds block gas limit".into() });

    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!(record.ending, Some(TxState::Failed));
    assert!(record.error.as_deref().unwrap().starts_with("refused by the node"), "{record:?}");
    let attempts = rig.attempts(&id);
    assert_eq!(attempts.last().unwrap().purpose, "noop");
    assert_eq!(rig.state(&next), TxState::Submitted, "the next nonce is not held hostage");

    rig.step().await;
    let noop = decode(rig.chain.received().last().unwrap()).unwrap();
    assert_eq!(
        (noop.nonce, noop.to, noop.value),
        (0, Some(rig.signer), U256::ZERO),
        "a zero-value self-transfer"
    );
    rig.chain.mine(&attempts.last().unwrap().hash, 2, true);
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Failed, "the no-op's receipt ends the request as it was meant to");
}

#[tokio::test(start_paused = true)]
async fn a_nonce_taken_by_another_transaction_is_replaced_after_a_grace() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;
    rig.chain.taken(rig.signer, 1);

    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Submitted, "the receipt may lag the count: not replaced yet");
    advance(super::REPLACED_AFTER).await;
    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!(record.state, TxState::Replaced);
    assert!(record.error.unwrap().contains("nonce 0 was used on chain"));
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_whose_nonce_was_used_is_replaced_without_signing() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.chain.taken(rig.signer, 1);

    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Replaced);
    assert!(rig.attempts(&id).is_empty(), "nothing signed for a nonce that can never be included");
    assert!(rig.chain.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reorg_sends_an_included_transaction_again() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;
    let hash = rig.attempts(&id)[0].hash.clone();
    rig.chain.mine(&hash, 5, true);
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Included);

    rig.chain.reorg(5, rig.signer, 0);
    advance(Duration::from_secs(1)).await;
    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!((record.state, record.block_number, record.tx_hash), (TxState::Submitted, None, None));
    let received = rig.chain.received();
    assert_eq!(received.len(), 2, "out again at once");
    assert_eq!(received[1], received[0], "with the same bytes");

    rig.chain.mine(&hash, 6, true);
    rig.step().await;
    assert_eq!(rig.ledger.get(&id).record.block_number, Some(6));
    assert_eq!(
        rig.ledger.announced(&id),
        [TxState::Signed, TxState::Submitted, TxState::Included, TxState::Submitted, TxState::Included]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_replaces_the_transaction_with_a_no_op_and_ends_cancelled() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;

    rig.ledger.request_ending(&id, TxState::Cancelled).await.unwrap();
    rig.step().await;
    let attempts = rig.attempts(&id);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].purpose, "noop");
    assert!(
        attempts[1].max_fee_per_gas.parse::<u128>().unwrap() * 10
            >= attempts[0].max_fee_per_gas.parse::<u128>().unwrap() * 11,
        "the no-op pays enough to replace the original"
    );

    rig.step().await;
    let noop = decode(rig.chain.received().last().unwrap()).unwrap();
    assert_eq!((noop.nonce, noop.to, noop.value, noop.data.len()), (0, Some(rig.signer), U256::ZERO, 0));
    rig.chain.mine(&attempts[1].hash, 4, true);
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn an_expired_request_is_never_sent_and_its_nonce_is_filled() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |r| r.valid_until_ms = Some(START - 1));

    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!((record.state, record.ending), (TxState::Submitted, Some(TxState::Expired)));
    assert_eq!(rig.attempts(&id)[0].purpose, "noop");
    let sent = decode(&rig.chain.received()[0]).unwrap();
    assert_eq!(sent.to, Some(rig.signer), "only the no-op went out");

    rig.chain.mine(&rig.attempts(&id)[0].hash, 2, true);
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Expired);
}

#[tokio::test(start_paused = true)]
async fn fees_above_the_cap_keep_a_new_request_queued() {
    let rig = rig(TxmOptions { max_fee_per_gas: Some(BASE_FEE), ..TxmOptions::default() }).await;
    let id = rig.queue(0, |_| {});

    let outcome = rig.step().await;
    assert_eq!(outcome.signed, 0);
    assert_eq!(rig.state(&id), TxState::Queued);
    assert!(rig.chain.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reverted_receipt_fails_the_request_with_the_reason() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.step().await;
    rig.chain.mine(&rig.attempts(&id)[0].hash, 2, false);

    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!(record.state, TxState::Failed);
    assert_eq!(record.error.as_deref(), Some("reverted: Error(scripted)"));
    assert_eq!(record.block_number, Some(2), "a failed transaction is still included");
}

#[tokio::test(start_paused = true)]
async fn bytes_stored_before_a_crash_are_sent_as_they_are() {
    // A crash between storing the signed bytes and broadcasting them: the next worker finds a signed
    // request with an unsent attempt. The node already mined it (`nonce too low`): counted as sent, then
    // settled by its receipt, never re-signed.
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    rig.chain.refuse_next(SendError::Underpriced { message: "keep it signed".into() });
    rig.step().await;
    let stored = rig.attempts(&id).last().unwrap().clone();
    assert_eq!((rig.state(&id), stored.sent_ms), (TxState::Signed, None));

    // The bytes reached the node after all and were mined; the answer now is "nonce too low".
    rig.chain.state.lock().unwrap().received.push(stored.raw.parse().unwrap());
    rig.chain.mine(&stored.hash, 7, true);
    rig.chain.refuse_next(SendError::NonceTooLow { message: "nonce too low".into() });
    rig.step().await;
    assert_eq!(rig.state(&id), TxState::Submitted, "\"nonce too low\" counts as sent");
    rig.step().await;
    let record = rig.ledger.get(&id).record;
    assert_eq!((record.state, record.tx_hash), (TxState::Included, Some(stored.hash.clone())));
    assert_eq!(rig.attempts(&id).len(), 2, "never re-signed");
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_lost_its_lease_commits_and_sends_nothing() {
    let rig = rig(TxmOptions::default()).await;
    let id = rig.queue(0, |_| {});
    let ttl = rig.worker.manager.options.lease_ttl;
    advance(ttl + Duration::from_millis(1)).await;
    let now = START + ttl.as_millis() as u64 + 1;
    let sender = address_text(rig.signer);
    let taken = rig.ledger.take_lease(CHAIN, &sender, "worker-b", now, 15_000).await.unwrap().unwrap();
    assert!(taken.token > rig.lease.token);

    let outcome = rig.worker.step(&rig.lease).await;
    assert!(matches!(outcome, Err(PassError::Store(StoreError::Fenced { .. }))), "{outcome:?}");
    assert_eq!(rig.state(&id), TxState::Queued, "nothing the stale worker decided was written");
    assert!(rig.attempts(&id).is_empty());
    assert!(rig.chain.received().is_empty(), "and nothing was broadcast");
}
