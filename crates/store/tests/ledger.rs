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
use gemgate_store::ledger::{Accepted, Attempt, Funds, Inclusion, Lease, NewTransaction, TxChange, TxRecord};

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
        relayed: Vec::new(),
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
        to,
        gas_limit: Some(21_000),
        payload: Some("{}".into()),
        ..TxChange::new(&record.id, revision, TxState::Queued, 31337, "k".into())
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

    bulk_changes_apply_each_at_its_revision(store, &second).await;
}

/// A worker's pass writes hundreds of changes at once (in several bulk statements): each applies only at
/// the revision it was read at, a request changed twice in one call gets both changes in order, attempts and
/// first-send times are stored, and only applied changes reach the outbox.
async fn bulk_changes_apply_each_at_its_revision(store: &SqlStore, lease: &Lease) {
    let id = |n: u64| format!("31337-{SENDER}-{n}");
    let change = |n: u64, revision: u64, from: TxState, to: TxState| TxChange {
        to,
        payload: Some("{}".into()),
        ..TxChange::new(&id(n), revision, from, 31337, "k".into())
    };
    let mut changes = Vec::new();
    for n in 1..=450u64 {
        // Every tenth was read at a revision it no longer has.
        let revision = if n % 10 == 0 { 7 } else { 0 };
        let mut signed = change(n, revision, TxState::Queued, TxState::Signed);
        signed.gas_limit = Some(21_000 + n);
        signed.attempt = Some(Attempt {
            attempt: 0,
            purpose: "send".into(),
            hash: format!("0x{n:064x}"),
            raw: "0x02".into(),
            gas_limit: 21_000 + n,
            max_fee_per_gas: "1000".into(),
            max_priority_fee_per_gas: Some("1".into()),
            sent_ms: None,
        });
        changes.push(signed);
    }
    let mut sent = change(1, 1, TxState::Signed, TxState::Submitted);
    sent.sent = Some((0, 777));
    sent.error = Some("a note".into());
    changes.push(sent);
    let mut included = change(1, 2, TxState::Submitted, TxState::Included);
    included.inclusion = Some(Some(Inclusion {
        tx_hash: format!("0x{:064x}", 1),
        block_number: 9,
        block_hash: format!("0x{:064x}", 99),
        receipt: "{}".into(),
    }));
    changes.push(included);
    let applied = store.apply_changes(Some(lease), 3_000, 5_000, &changes).await.unwrap();
    assert_eq!(applied, 450 - 45 + 2, "stale revisions skipped, the rest applied");

    let one = store.transaction(&id(1)).await.unwrap().unwrap();
    assert_eq!((one.state, one.revision, one.gas_limit), (TxState::Included, 3, Some(21_001)));
    assert_eq!((one.block_number, one.error.as_deref()), (Some(9), Some("a note")));
    assert_eq!(one.tx_hash, Some(format!("0x{:064x}", 1)));
    let attempts = store.attempts(&id(1)).await.unwrap();
    assert_eq!((attempts.len(), attempts[0].sent_ms), (1, Some(777)), "first send recorded");
    let two = store.transaction(&id(2)).await.unwrap().unwrap();
    assert_eq!((two.state, two.revision, two.gas_limit, two.error), (TxState::Signed, 1, Some(21_002), None));
    assert_eq!((two.tx_hash, two.block_number), (None, None), "no inclusion given: left alone");
    assert_eq!(store.attempts(&id(2)).await.unwrap()[0].sent_ms, None);
    let stale = store.transaction(&id(10)).await.unwrap().unwrap();
    assert_eq!((stale.state, stale.revision), (TxState::Queued, 0));
    assert!(store.attempts(&id(10)).await.unwrap().is_empty(), "no attempt stored for a skipped change");

    let kinds = |entries: Vec<OutboxEntry>, of: &str| -> Vec<String> {
        entries
            .into_iter()
            .filter_map(|e| match e {
                OutboxEntry::Message(m) if m.id.starts_with(&format!("{of}:")) => Some(m.kind),
                _ => None,
            })
            .collect()
    };
    let outbox = store.outbox_after(0, 100_000).await.unwrap();
    assert_eq!(
        kinds(outbox.clone(), &id(1)),
        ["transaction.queued", "transaction.signed", "transaction.submitted", "transaction.included"]
    );
    assert_eq!(kinds(outbox, &id(10)), ["transaction.queued"], "nothing announced for a skipped change");
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

/// One accepting transaction for many requests answers each exactly as one at a time would: keys known
/// before the batch and keys first seen in it, conflicts, a refusal for funds that spends no nonce, several
/// senders each caught up to its chain count.
async fn a_batch_answers_like_requests_one_at_a_time(url: &str) {
    let store = SqlStore::connect(url, 4, ProjectionSet::default()).await.unwrap();
    store.migrate().await.unwrap();
    let known = new(store.accept_transaction(&request(Some("known"), "known"), 0, payload).await.unwrap());
    let other_sender = |body: &str| NewTransaction {
        sender: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into(),
        ..request(None, body)
    };
    let mut unpayable = request(Some("poor"), "poor");
    unpayable.gas_limit = Some(21_000);
    unpayable.funds = Some(Funds { balance: U256::from(1u64), max_fee_per_gas: 1 });
    let batch = [
        (request(Some("b-1"), "b-1"), 0),
        (request(Some("known"), "known"), 0),
        (request(Some("b-1"), "b-1"), 0),
        (request(Some("b-1"), "another body"), 0),
        (request(Some("known"), "another body"), 0),
        (unpayable, 0),
        (other_sender("elsewhere"), 7),
        (request(None, "b-2"), 0),
        (other_sender("elsewhere, next"), 3),
    ];
    let answers = store.accept_transactions(&batch, payload).await.unwrap();
    let first = match &answers[0] {
        Accepted::New(record) => record.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(first.nonce, 1, "after the request accepted before the batch");
    assert_eq!(answers[1], Accepted::Existing(known.clone()));
    assert_eq!(answers[2], Accepted::Existing(first.clone()), "a key first seen earlier in the same batch");
    assert_eq!(answers[3], Accepted::Conflict { id: first.id.clone() });
    assert_eq!(answers[4], Accepted::Conflict { id: known.id.clone() });
    assert!(matches!(answers[5], Accepted::InsufficientFunds { .. }), "{:?}", answers[5]);
    let nonces: Vec<(String, u64)> = answers[6..]
        .iter()
        .map(|a| match a {
            Accepted::New(r) => (r.sender.clone(), r.nonce),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        nonces,
        [
            ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8".to_string(), 7),
            (SENDER.to_string(), 2),
            ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8".to_string(), 8)
        ],
        "the refused request spent no nonce; the other sender starts at its chain count"
    );
    // Stored as answered, each announced once.
    assert_eq!(store.transaction(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.transactions_of(31337, SENDER).await.unwrap().len(), 3);
    let queued = store
        .outbox_after(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e, OutboxEntry::Message(m) if m.kind == "transaction.queued"))
        .count();
    assert_eq!(queued, 5, "the request before the batch and the four new in it");
    // The next request carries on from the batch.
    assert_eq!(new(store.accept_transaction(&request(None, "after"), 0, payload).await.unwrap()).nonce, 3);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_like_requests_one_at_a_time_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_batch_answers_like_requests_one_at_a_time(&format!(
        "sqlite://{}",
        dir.path().join("batch.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_like_requests_one_at_a_time_on_postgres() {
    let Some(db) = common::postgres("a_batch_answers_like_requests_one_at_a_time_on_postgres", "batch").await
    else {
        return;
    };
    a_batch_answers_like_requests_one_at_a_time(&db.url).await;
    db.drop().await;
}
