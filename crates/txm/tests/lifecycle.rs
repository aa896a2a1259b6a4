//! The transaction manager against a real anvil and real databases: thousands of concurrent requests get
//! contiguous nonces and are all included; a dropped transaction is sent again; a base-fee spike is
//! outbid by re-pricing; a reorg after inclusion sends the transaction back and it is included again;
//! cancels and expiries fill the nonce with a no-op.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use gemgate_domain::TxState;
use gemgate_domain::ports::{OutboxEntry, OutboxStore};
use gemgate_store::ledger::TxRecord;
use gemgate_testkit::{Anvil, AnvilOptions, anvil_or_skip};
use gemgate_txm::signers::LocalSigner;
use gemgate_txm::{NamedSigner, Submit, Submitted, TxManager, TxmOptions};

/// anvil's first account: the signer under test.
const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The tests of this file run one at a time (each starts its own anvil and database; two cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Rig {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    anvil: Anvil,
    running: support::Running,
    _dir: tempfile::TempDir,
}

/// The signer under test, on anvil's chain.
fn ops(anvil: &Anvil) -> NamedSigner {
    let local = LocalSigner::from_hex("ops", KEY).unwrap();
    let address = gemgate_domain::ports::Signer::address(&local);
    NamedSigner { name: "ops".into(), chains: vec![anvil.chain_id()], address, signer: Arc::new(local) }
}

async fn rig(test: &str, db_url: Option<&str>, anvil: AnvilOptions, options: TxmOptions) -> Option<Rig> {
    let serial = SERIAL.lock().await;
    // GEMGATE_TEST_LOG=gemgate_txm=debug shows what the workers do.
    if let Ok(filter) = std::env::var("GEMGATE_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let anvil = anvil_or_skip(test, anvil).await.unwrap()?;
    let dir = tempfile::tempdir().unwrap();
    let store = support::ledger(db_url, dir.path()).await;
    let signer = ops(&anvil);
    let running = support::start(store, &anvil, signer, options);
    Some(Rig { _serial: serial, anvil, running, _dir: dir })
}

impl Rig {
    fn request(&self, key: &str, gas: Option<u64>) -> Submit {
        let mut request =
            Submit::transfer(key, "ops", self.anvil.chain_id(), self.anvil.accounts()[2], U256::from(1u64));
        request.gas_limit = gas;
        request
    }

    async fn submit(&self, key: &str) -> TxRecord {
        match self.manager().submit(self.request(key, None)).await.unwrap() {
            Submitted::New(r) => r,
            Submitted::Existing(r) => panic!("not new: {r:?}"),
        }
    }

    async fn record(&self, id: &str) -> TxRecord {
        self.manager().store.transaction(id).await.unwrap().unwrap()
    }

    /// Waits until the request is in one of `states`.
    async fn until(&self, id: &str, states: &[TxState], within: Duration) -> TxRecord {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let record = self.record(id).await;
            if states.contains(&record.state) {
                return record;
            }
            if tokio::time::Instant::now() >= deadline {
                let attempts = self.manager().store.attempts(id).await.unwrap();
                let sender: Address = record.sender.parse().unwrap();
                let mined = self.anvil.provider().get_transaction_count(sender).await.unwrap();
                panic!(
                    "{id} (nonce {}, chain's count {mined}) still {:?} (error {:?}), waited for {states:?}; attempts: {attempts:?}",
                    record.nonce, record.state, record.error
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `transaction.<state>` messages of a request, in outbox order.
    async fn announced(&self, id: &str) -> Vec<String> {
        let entries = self.running.store.outbox_after(0, 100_000).await.unwrap();
        entries
            .into_iter()
            .filter_map(|e| match e {
                OutboxEntry::Message(m) if m.id.starts_with(&format!("{id}:")) => Some(m.kind),
                _ => None,
            })
            .collect()
    }

    fn manager(&self) -> &TxManager {
        &self.running.manager
    }

    async fn stop(self) {
        let store = self.running.store.clone();
        self.running.stop().await;
        store.close().await;
    }
}

fn quick() -> TxmOptions {
    TxmOptions {
        poll_interval: Duration::from_millis(100),
        bump_after: Duration::from_secs(2),
        rebroadcast_after: Duration::from_millis(500),
        ..TxmOptions::default()
    }
}

const DONE: [TxState; 3] = [TxState::Included, TxState::Safe, TxState::Finalized];

async fn two_thousand_requests(test: &str, db_url: Option<&str>) {
    let Some(rig) = rig(test, db_url, AnvilOptions::default(), quick()).await else { return };
    let rig = Arc::new(rig);
    let clients: Vec<_> = (0..50)
        .map(|client| {
            let rig = rig.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..40 {
                    // Half with a gas limit given, half estimated (+20%).
                    let gas = (i % 2 == 0).then_some(21_000);
                    let key = format!("c{client}-{i}");
                    let accepted = rig.manager().submit(rig.request(&key, gas)).await.unwrap();
                    ids.push(accepted.record().id.clone());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await.unwrap());
    }
    assert_eq!(ids.len(), 2_000);
    let mut nonces = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    for id in &ids {
        let record = rig.until(id, &DONE, Duration::from_secs(180)).await;
        nonces.insert(record.nonce);
        hashes.insert(record.tx_hash.clone().unwrap());
    }
    assert_eq!(nonces.into_iter().collect::<Vec<_>>(), (0..2_000).collect::<Vec<_>>(), "contiguous nonces");
    assert_eq!(hashes.len(), 2_000, "one transaction per request");
    let sender: Address = KEY.parse::<alloy::signers::local::PrivateKeySigner>().unwrap().address();
    let chain_nonce = rig.anvil.provider().get_transaction_count(sender).await.unwrap();
    assert_eq!(chain_nonce, 2_000, "exactly 2,000 transactions on chain: none twice, none lost");
    let first = rig.record(&ids[0]).await;
    assert_eq!(
        rig.announced(&first.id).await[..3],
        ["transaction.queued", "transaction.signed", "transaction.submitted"]
    );
    assert!(rig.announced(&first.id).await.contains(&"transaction.included".to_string()));
    let rig = Arc::into_inner(rig).unwrap();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_50_concurrent_are_included_with_contiguous_nonces_on_sqlite() {
    two_thousand_requests(
        "two_thousand_requests_50_concurrent_are_included_with_contiguous_nonces_on_sqlite",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_50_concurrent_are_included_with_contiguous_nonces_on_postgres() {
    let test = "two_thousand_requests_50_concurrent_are_included_with_contiguous_nonces_on_postgres";
    let Some(db) = common::postgres(test, "txm_2000").await else { return };
    two_thousand_requests(test, Some(&db.url)).await;
    db.drop().await;
}

/// A short database name per test (Postgres names are limited to 63 bytes).
fn tag(test: &str) -> String {
    format!("txm_{}", test.split('_').filter_map(|w| w.chars().next()).collect::<String>())
}

fn manual_mining() -> AnvilOptions {
    AnvilOptions { extra_args: vec!["--no-mining".into()], ..AnvilOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_from_the_pool_is_sent_again_and_included_on_sqlite() {
    a_transaction_dropped_from_the_pool_is_sent_again_and_included(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_from_the_pool_is_sent_again_and_included_on_postgres() {
    let Some(db) = common::postgres(
        "a_transaction_dropped_from_the_pool_is_sent_again_and_included_on_postgres",
        &tag("a_transaction_dropped_from_the_pool_is_sent_again_and_included"),
    )
    .await
    else {
        return;
    };
    a_transaction_dropped_from_the_pool_is_sent_again_and_included(Some(&db.url)).await;
    db.drop().await;
}

async fn a_transaction_dropped_from_the_pool_is_sent_again_and_included(db_url: Option<&str>) {
    let test = "a_transaction_dropped_from_the_pool_is_sent_again_and_included";
    let Some(rig) = rig(test, db_url, manual_mining(), quick()).await else { return };
    let id = rig.submit("drop-me").await.id;
    let submitted = rig.until(&id, &[TxState::Submitted], Duration::from_secs(30)).await;
    let attempts = rig.manager().store.attempts(&id).await.unwrap();
    let hash = attempts[0].hash.parse().unwrap();
    rig.anvil.drop_transaction(hash).await.unwrap();
    let provider = rig.anvil.provider();
    assert!(provider.get_transaction_by_hash(hash).await.unwrap().is_none(), "anvil forgot it");
    // The worker notices and sends the same bytes again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while provider.get_transaction_by_hash(hash).await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "never sent again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.anvil.mine(1).await.unwrap();
    let included = rig.until(&id, &DONE, Duration::from_secs(30)).await;
    assert_eq!(included.tx_hash.as_deref(), Some(attempts[0].hash.as_str()), "the same bytes, not re-signed");
    assert_eq!(included.nonce, submitted.nonce);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_fee_spike_is_outbid_by_re_pricing_on_sqlite() {
    a_base_fee_spike_is_outbid_by_re_pricing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_fee_spike_is_outbid_by_re_pricing_on_postgres() {
    let Some(db) = common::postgres(
        "a_base_fee_spike_is_outbid_by_re_pricing_on_postgres",
        &tag("a_base_fee_spike_is_outbid_by_re_pricing"),
    )
    .await
    else {
        return;
    };
    a_base_fee_spike_is_outbid_by_re_pricing(Some(&db.url)).await;
    db.drop().await;
}

async fn a_base_fee_spike_is_outbid_by_re_pricing(db_url: Option<&str>) {
    let test = "a_base_fee_spike_is_outbid_by_re_pricing";
    let Some(rig) = rig(test, db_url, manual_mining(), quick()).await else { return };
    let ids = [rig.submit("spike-0").await.id, rig.submit("spike-1").await.id];
    for id in &ids {
        rig.until(id, &[TxState::Submitted], Duration::from_secs(30)).await;
    }
    let first_fee: u128 =
        rig.manager().store.attempts(&ids[0]).await.unwrap()[0].max_fee_per_gas.parse().unwrap();
    // The next block's base fee jumps a hundredfold: our fee caps are far below it.
    let spiked = U256::from(first_fee * 100);
    rig.anvil
        .provider()
        .raw_request::<_, serde_json::Value>("anvil_setNextBlockBaseFeePerGas".into(), (spiked,))
        .await
        .unwrap();
    rig.anvil.mine(1).await.unwrap();
    for id in &ids {
        assert_eq!(rig.record(id).await.state, TxState::Submitted, "underpriced: not included");
    }
    // After the bump wait the worker re-prices at the market (now the spiked base fee); the next blocks
    // include both.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        rig.anvil.mine(1).await.unwrap();
        let states = futures::future::join_all(ids.iter().map(|id| rig.record(id))).await;
        if states.iter().all(|r| DONE.contains(&r.state)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never re-priced into a block: {states:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for id in &ids {
        let record = rig.record(id).await;
        let attempts = rig.manager().store.attempts(id).await.unwrap();
        assert!(attempts.len() >= 2, "{id} was re-priced");
        // A re-priced attempt was included (a later one may have been stored just as the block was mined).
        let included = attempts.iter().position(|a| Some(a.hash.as_str()) == record.tx_hash.as_deref());
        assert!(included.is_some_and(|i| i >= 1), "a re-priced attempt was included: {included:?}");
        for pair in attempts.windows(2) {
            let (a, b): (u128, u128) =
                (pair[0].max_fee_per_gas.parse().unwrap(), pair[1].max_fee_per_gas.parse().unwrap());
            assert!(b * 10 >= a * 11, "each replacement pays at least 10% more: {a} -> {b}");
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_node_keeps_but_never_mines_is_re_priced_on_sqlite() {
    a_transaction_the_node_keeps_but_never_mines_is_re_priced(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_node_keeps_but_never_mines_is_re_priced_on_postgres() {
    let Some(db) = common::postgres(
        "a_transaction_the_node_keeps_but_never_mines_is_re_priced_on_postgres",
        &tag("a_transaction_the_node_keeps_but_never_mines_is_re_priced"),
    )
    .await
    else {
        return;
    };
    a_transaction_the_node_keeps_but_never_mines_is_re_priced(Some(&db.url)).await;
    db.drop().await;
}

/// The node holds the transaction in its pool and answers "already known" to every re-broadcast, but never
/// mines it (anvil under concurrent arrivals does this now and then; so does a node whose pool has parked
/// it). Re-broadcasts every 500 ms must not reset the re-pricing clock: after `bump_after` a replacement
/// goes out, and that is what gets included.
async fn a_transaction_the_node_keeps_but_never_mines_is_re_priced(db_url: Option<&str>) {
    let test = "a_transaction_the_node_keeps_but_never_mines_is_re_priced";
    let Some(rig) = rig(test, db_url, manual_mining(), quick()).await else { return };
    let id = rig.submit("kept").await.id;
    rig.until(&id, &[TxState::Submitted], Duration::from_secs(30)).await;
    let first = rig.manager().store.attempts(&id).await.unwrap()[0].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let attempts = loop {
        // Re-priced and the replacement broadcast (it is stored one pass before it goes out).
        let attempts = rig.manager().store.attempts(&id).await.unwrap();
        if attempts.len() >= 2 && attempts.last().is_some_and(|a| a.sent_ms.is_some()) {
            break attempts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never re-priced while the node kept it unmined (bump_after 2 s, re-broadcast every 500 ms)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(attempts[0].sent_ms, first.sent_ms, "sending the same bytes again keeps the first send time");
    rig.anvil.mine(1).await.unwrap();
    let included = rig.until(&id, &DONE, Duration::from_secs(30)).await;
    let attempts = rig.manager().store.attempts(&id).await.unwrap();
    assert_ne!(included.tx_hash.as_deref(), Some(first.hash.as_str()), "a replacement was included");
    assert!(attempts.iter().any(|a| Some(a.hash.as_str()) == included.tx_hash.as_deref()));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again_on_sqlite() {
    a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again_on_postgres() {
    let Some(db) = common::postgres(
        "a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again_on_postgres",
        &tag("a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again"),
    )
    .await
    else {
        return;
    };
    a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again(Some(&db.url)).await;
    db.drop().await;
}

async fn a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again(db_url: Option<&str>) {
    let test = "a_reorg_after_inclusion_sends_the_transaction_back_and_it_is_included_again";
    let Some(rig) = rig(test, db_url, AnvilOptions::default(), quick()).await else { return };
    let id = rig.submit("reorg-me").await.id;
    let first = rig.until(&id, &[TxState::Included], Duration::from_secs(30)).await;
    rig.anvil.mine(1).await.unwrap();
    rig.anvil.reorg(2).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let again = loop {
        let now = rig.record(&id).await;
        if DONE.contains(&now.state) && now.block_hash != first.block_hash {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "not included again: {now:?}");
        // Blocks keep coming, as on a live chain (automine only mines for new transactions).
        rig.anvil.mine(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(again.tx_hash, first.tx_hash, "the same transaction, not a new one");
    let announced = rig.announced(&id).await;
    let included_at = announced.iter().position(|k| k == "transaction.included").unwrap();
    assert!(
        announced[included_at + 1..]
            .starts_with(&["transaction.submitted".to_string(), "transaction.included".to_string()]),
        "included, back to submitted, included again: {announced:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through_on_sqlite() {
    cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through_on_postgres() {
    let Some(db) = common::postgres(
        "cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through_on_postgres",
        &tag("cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through"),
    )
    .await
    else {
        return;
    };
    cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through(Some(&db.url)).await;
    db.drop().await;
}

async fn cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through(db_url: Option<&str>) {
    let test = "cancel_and_expiry_fill_the_nonce_with_a_no_op_and_later_requests_go_through";
    let Some(rig) = rig(test, db_url, manual_mining(), quick()).await else { return };
    let cancelled = rig.submit("cancel-me").await.id;
    rig.until(&cancelled, &[TxState::Submitted], Duration::from_secs(30)).await;
    let mut expiring = rig.request("expire-me", None);
    let until_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
        as u64
        + 1_000;
    let text =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(until_ms)).to_string();
    expiring.valid_until = Some((text, until_ms));
    let expiring = rig.manager().submit(expiring).await.unwrap().record().id.clone();
    let after = rig.submit("after").await.id;
    rig.manager().cancel(&cancelled).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        rig.anvil.mine(1).await.unwrap();
        let states = [
            rig.record(&cancelled).await.state,
            rig.record(&expiring).await.state,
            rig.record(&after).await.state,
        ];
        if states[0] == TxState::Cancelled && states[1] == TxState::Expired && DONE.contains(&states[2]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "states {states:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The no-ops are zero-value self-transfers at the requests' nonces.
    for id in [&cancelled, &expiring] {
        let record = rig.record(id).await;
        let attempts = rig.manager().store.attempts(id).await.unwrap();
        let noop = attempts.iter().find(|a| Some(a.hash.as_str()) == record.tx_hash.as_deref()).unwrap();
        assert_eq!(noop.purpose, "noop");
        let tx =
            rig.anvil.provider().get_transaction_by_hash(noop.hash.parse().unwrap()).await.unwrap().unwrap();
        use alloy::consensus::Transaction as _;
        assert_eq!((tx.to(), tx.value(), tx.nonce()), (Some(tx.inner.signer()), U256::ZERO, record.nonce));
    }
    rig.stop().await;
}

/// A request accepted while another wallet with the same key uses its nonce (the request is still queued:
/// no worker has signed it) can never be included: it is `replaced` without being signed, and the signer's
/// next requests go out. (The ledger once refused `queued -> replaced`, and the worker's pass failed on it
/// forever, holding every later request of the signer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_request_whose_nonce_another_wallet_used_is_replaced_and_later_ones_go_out() {
    let test = "a_queued_request_whose_nonce_another_wallet_used_is_replaced_and_later_ones_go_out";
    let _serial = SERIAL.lock().await;
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = support::ledger(None, dir.path()).await;
    let signer = ops(&anvil);
    let address = signer.address;
    let to = anvil.accounts()[2];
    let transfer = |key: &str| Submit::transfer(key, "ops", anvil.chain_id(), to, U256::from(1u64));

    // Accepted by a front door while no worker runs: queued at the key's next nonce.
    let front = support::manager(&store, &anvil, signer.clone(), quick());
    let Submitted::New(queued) = front.submit(transfer("taken")).await.unwrap() else { panic!("not new") };
    assert_eq!(queued.state, TxState::Queued);
    // Another wallet holding the same key sends first (anvil signs for its unlocked dev account).
    let provider = anvil.provider();
    let other = alloy::rpc::types::TransactionRequest::default().from(address).to(to).value(U256::from(7u64));
    provider.send_transaction(other).await.unwrap().get_receipt().await.unwrap();
    assert_eq!(provider.get_transaction_count(address).await.unwrap(), queued.nonce + 1, "the nonce is used");

    let running = support::start(store.clone(), &anvil, signer, quick());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let replaced = loop {
        let record = running.manager.store.transaction(&queued.id).await.unwrap().unwrap();
        if record.state.is_terminal() {
            break record;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {:?}", record.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(replaced.state, TxState::Replaced, "{replaced:?}");
    assert!(running.manager.store.attempts(&queued.id).await.unwrap().is_empty(), "never signed");

    let Submitted::New(next) = running.manager.submit(transfer("after")).await.unwrap() else { panic!() };
    assert_eq!(next.nonce, queued.nonce + 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = running.manager.store.transaction(&next.id).await.unwrap().unwrap();
        if DONE.contains(&record.state) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the next request is held: {record:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    store.close().await;
}
