//! The transaction ledger on SQLite and Postgres: nonces allocated in the accepting transaction are
//! contiguous under concurrency, idempotency keys return the original request without spending a nonce,
//! and a ledger behind the chain catches up.

mod common;

use std::collections::BTreeSet;

use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_store::ledger::{Accepted, NewTransaction};

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
    }
}

fn new(accepted: Accepted) -> gemgate_store::ledger::TxRecord {
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
                    new(store.accept_transaction(&request(Some(&key), &key), 0).await.unwrap()).nonce
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
    let again = store.accept_transaction(&request(Some("k-3-7"), "k-3-7"), 0).await.unwrap();
    let Accepted::Existing(original) = again else { panic!("{again:?}") };
    assert_eq!(store.transaction(&original.id).await.unwrap().as_ref(), Some(&original));
    assert_eq!(original.state, gemgate_domain::TxState::Queued);
    // The same key with another body: a conflict naming the original.
    let conflict = store.accept_transaction(&request(Some("k-3-7"), "other body"), 0).await.unwrap();
    assert_eq!(conflict, Accepted::Conflict { id: original.id.clone() });
    let next = new(store.accept_transaction(&request(None, "no key"), 0).await.unwrap());
    assert_eq!(next.nonce, 2_000, "answering a known key spent no nonce");

    // The chain ahead of the ledger (the key was used elsewhere): the ledger catches up; behind it (our
    // requests are not mined yet): the ledger's count stands.
    assert_eq!(new(store.accept_transaction(&request(None, "ahead"), 2_050).await.unwrap()).nonce, 2_050);
    assert_eq!(new(store.accept_transaction(&request(None, "behind"), 3).await.unwrap()).nonce, 2_051);
    let all = store.transactions_of(31337, SENDER).await.unwrap();
    assert_eq!(all.len(), 2_003);
    assert!(all.windows(2).all(|w| w[0].nonce < w[1].nonce), "in nonce order");
    store.close().await;
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
