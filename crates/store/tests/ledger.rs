//! The transaction ledger on SQLite and Postgres: nonces allocated in the accepting transaction are
//! contiguous under concurrency, idempotency keys return the original request without spending a nonce,
//! and a ledger behind the chain catches up.

mod common;

use std::collections::BTreeSet;

use alloy_primitives::U256;
use gemgate_domain::ports::{OutboxEntry, OutboxStore};
use gemgate_domain::{StoreError, TxState};
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_store::ledger::{Accepted, Funds, NewTransaction, TxChange, TxRecord};

const SENDER: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

fn request(key: Option<&str>, body: &str) -> NewTransaction {
    NewTransaction {
        idempotency_key: key.map(str::to_string),
        body_sha256: body.to_string(),
        chain_id: 31337,
        signer: "ops".into(),
        sender: SENDER.into(),
        to: Some("0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into()),
        value: "1".into(),
        data: "0x".into(),
        gas_limit: None,
        speed: "normal".into(),
        valid_until: None,
        valid_until_ms: None,
        funds: None,
    }
}

fn payload(record: &TxRecord) -> String {
    format!("{{\"id\":\"{}\"}}", record.id)
}

fn new(accepted: Accepted) -> TxRecord {
    match accepted {
        Accepted::New(record) => record,
        other => panic!("expected a new request: {other:?}"),
    }
}

async fn ledger_holds(url: &str) {
    let store = SqlStore::connect(url, 8, ProjectionSet::default()).await.unwrap();
    store.migrate().await.unwrap();

    // 2,000 requests, 50 at a time: every nonce once, none skipped.
    let mut nonces = Vec::new();
    for wave in 0..40 {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("k-{wave}-{i}");
                    new(store.accept_transaction(&request(Some(&key), &key), 0, payload).await.unwrap()).nonce
                })
            })
            .collect();
        for task in tasks {
            nonces.push(task.await.unwrap());
        }
    }
    let distinct: BTreeSet<u64> = nonces.iter().copied().collect();
    assert_eq!(distinct.len(), 2_000, "no nonce twice");
    assert_eq!(distinct.into_iter().collect::<Vec<_>>(), (0..2_000).collect::<Vec<_>>(), "contiguous from 0");

    // The same key and body: the original request, and no nonce spent.
    let again = store.accept_transaction(&request(Some("k-3-7"), "k-3-7"), 0, payload).await.unwrap();
    let Accepted::Existing(original) = again else { panic!("{again:?}") };
    assert_eq!(store.transaction(&original.id).await.unwrap().as_ref(), Some(&original));
    assert_eq!(original.state, gemgate_domain::TxState::Queued);
    // The same key with another body: a conflict naming the original.
    let conflict = store.accept_transaction(&request(Some("k-3-7"), "other body"), 0, payload).await.unwrap();
    assert_eq!(conflict, Accepted::Conflict { id: original.id.clone() });
    let next = new(store.accept_transaction(&request(None, "no key"), 0, payload).await.unwrap());
    assert_eq!(next.nonce, 2_000, "answering a known key spent no nonce");

    // The chain ahead of the ledger (the key was used elsewhere): the ledger catches up; behind it (our
    // requests are not mined yet): the ledger's count stands.
    assert_eq!(
        new(store.accept_transaction(&request(None, "ahead"), 2_050, payload).await.unwrap()).nonce,
        2_050
    );
    assert_eq!(
        new(store.accept_transaction(&request(None, "behind"), 3, payload).await.unwrap()).nonce,
        2_051
    );
    let all = store.transactions_of(31337, SENDER).await.unwrap();
    assert_eq!(all.len(), 2_003);
    assert!(all.windows(2).all(|w| w[0].nonce < w[1].nonce), "in nonce order");
    lifecycle_holds(&store).await;
    store.close().await;
}

/// Leases fence stale workers, changes compare revisions, state changes reach the outbox, and a balance
/// that cannot cover what is pending refuses the request.
async fn lifecycle_holds(store: &SqlStore) {
    let first =
        store.acquire_lease(31337, SENDER, "worker-a", 1_000, 5_000).await.unwrap().expect("free lease");
    assert!(
        store.acquire_lease(31337, SENDER, "worker-b", 2_000, 5_000).await.unwrap().is_none(),
        "held by a"
    );
    let renewed = store.acquire_lease(31337, SENDER, "worker-a", 3_000, 5_000).await.unwrap().unwrap();
    assert_eq!(renewed.token, first.token, "renewal keeps the token");

    let record = store.transaction(&format!("31337-{SENDER}-0")).await.unwrap().unwrap();
    let change = |revision, to| TxChange {
        id: record.id.clone(),
        revision,
        from: TxState::Queued,
        to,
        attempt: None,
        sent: None,
        inclusion: None,
        gas_limit: Some(21_000),
        error: None,
        ending: None,
        payload: Some("{}".into()),
        chain_id: 31337,
        ordering_key: "k".into(),
    };
    assert_eq!(
        store.apply_changes(Some(&first), 3_000, 5_000, &[change(0, TxState::Signed)]).await.unwrap(),
        1
    );
    assert_eq!(
        store.apply_changes(Some(&first), 3_000, 5_000, &[change(0, TxState::Signed)]).await.unwrap(),
        0,
        "a stale revision is skipped"
    );
    let now = store.transaction(&record.id).await.unwrap().unwrap();
    assert_eq!((now.state, now.revision, now.gas_limit), (TxState::Signed, 1, Some(21_000)));

    // Worker b takes the expired lease: a's writes are fenced off.
    let second =
        store.acquire_lease(31337, SENDER, "worker-b", 20_000, 5_000).await.unwrap().expect("expired");
    assert!(second.token > first.token);
    let fenced = store.apply_changes(Some(&first), 20_001, 5_000, &[]).await.unwrap_err();
    assert!(matches!(fenced, StoreError::Fenced { current, .. } if current == second.token), "{fenced:?}");

    // Every state change wrote an outbox row `transaction.<state>`.
    let kinds: Vec<String> = store
        .outbox_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            OutboxEntry::Message(m) if m.id.starts_with(&record.id) => Some(format!("{} {}", m.id, m.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [format!("{}:0 transaction.queued", record.id), format!("{}:1 transaction.signed", record.id)]
    );

    // A balance that covers this request's gas alone: the value of everything pending (1 wei each) tips it.
    let mut poor = request(None, "poor");
    poor.gas_limit = Some(21_000);
    poor.funds =
        Some(Funds { balance: U256::from(21_000u64 * 1_000_000_000), max_fee_per_gas: 1_000_000_000 });
    let refused = store.accept_transaction(&poor, 0, payload).await.unwrap();
    let Accepted::InsufficientFunds { needed, .. } = refused else { panic!("{refused:?}") };
    // This request's gas and value, the signed request's gas (21,000 set above) and 2,003 pending values.
    assert_eq!(needed, U256::from(2 * 21_000u64 * 1_000_000_000 + 1 + 2_003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_contiguous_and_idempotency_keys_hold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    ledger_holds(&format!("sqlite://{}", dir.path().join("ledger.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_contiguous_and_idempotency_keys_hold_on_postgres() {
    let Some(db) =
        common::postgres("nonces_are_contiguous_and_idempotency_keys_hold_on_postgres", "ledger").await
    else {
        return;
    };
    ledger_holds(&db.url).await;
    db.drop().await;
}
