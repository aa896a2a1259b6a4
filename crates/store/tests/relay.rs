//! The relayer's rows on SQLite and Postgres: quotas charged by many concurrent requests never pass their
//! limit (50 against 20: exactly 20), a set of charges is all or nothing, refunds give back, and the ERC-2771
//! requests a transaction relays are stored with it and read back in order, and a forwarder nonce being
//! relayed is not accepted twice.

mod common;

use std::sync::Arc;

use gemgate_domain::ledger::{Accepted, NewTransaction};
use gemgate_domain::ports::{Ledger, RelayQuotas};
use gemgate_domain::relay::{QuotaCharge, RelayedCall};
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;

fn charge(bucket: &str, amount: u64, limit: u64) -> QuotaCharge {
    QuotaCharge { bucket: bucket.into(), window_start: 1_700_000_000, amount, limit }
}

fn relayed(digest: &str, nonce: u64) -> RelayedCall {
    RelayedCall {
        digest: digest.into(),
        relayer: "carbon".into(),
        from: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".into(),
        to: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        nonce: nonce.to_string(),
        deadline: 1_900_000_000,
    }
}

async fn quotas_hold(url: &str) {
    let store = Arc::new(SqlStore::connect(url, 8, ProjectionSet::default()).await.unwrap());
    store.migrate().await.unwrap();

    // 50 concurrent charges of one bucket against a limit of 20.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.charge(&[charge("r:key:backend:requests", 1, 20)]).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_none() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20, "exactly the quota is charged under concurrency");

    // All or nothing: the second charge fails, so the first is not kept either.
    let pair = [charge("r:user:a:gas", 600, 1_000), charge("r:key:backend:requests", 1, 20)];
    assert_eq!(store.charge(&pair).await.unwrap(), Some(1));
    assert_eq!(
        store.charge(&[charge("r:user:a:gas", 1_000, 1_000)]).await.unwrap(),
        None,
        "nothing was kept"
    );
    assert_eq!(store.charge(&[charge("r:user:a:gas", 1, 1_000)]).await.unwrap(), Some(0));
    // A first charge larger than its limit is refused too (no row to update).
    assert_eq!(store.charge(&[charge("r:user:b:gas", 1_001, 1_000)]).await.unwrap(), Some(0));

    // Refunds give back what was charged.
    store.refund(&[charge("r:key:backend:requests", 2, 20)]).await.unwrap();
    assert_eq!(store.charge(&[charge("r:key:backend:requests", 2, 20)]).await.unwrap(), None);
    assert_eq!(store.charge(&[charge("r:key:backend:requests", 1, 20)]).await.unwrap(), Some(0));
    // Another window is another count.
    let next = QuotaCharge { window_start: 1_700_003_600, ..charge("r:key:backend:requests", 1, 20) };
    assert_eq!(store.charge(&[next]).await.unwrap(), None);

    // Relayed requests are stored with their transaction, in order, and the origin says so.
    let request = NewTransaction {
        idempotency_key: Some("relay:0xd1".into()),
        body_sha256: "0xd1".into(),
        chain_id: 31337,
        signer: "relayer".into(),
        sender: "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266".into(),
        to: Some("0x5fbdb2315678afecb367f032d93f642f64180aa3".into()),
        value: "0".into(),
        data: "0x".into(),
        gas_limit: Some(100_000),
        speed: "normal".into(),
        valid_until: None,
        valid_until_ms: None,
        funds: None,
        relayed: vec![relayed("0xd1", 0), relayed("0xd2", 1)],
    };
    let payload = |r: &gemgate_domain::ledger::TxRecord| format!("{{\"id\":\"{}\"}}", r.id);
    let answers = store.accept(&[(request.clone(), 0)], &payload).await.unwrap();
    let Accepted::New(record) = &answers[0] else { panic!("not new: {answers:?}") };
    assert_eq!(record.origin, "relay");
    let calls = store.relayed(&record.id).await.unwrap();
    assert_eq!(calls, vec![relayed("0xd1", 0), relayed("0xd2", 1)]);
    // The same request again is the same transaction, with nothing stored twice.
    let again = store.accept(&[(request.clone(), 0)], &payload).await.unwrap();
    assert!(matches!(&again[0], Accepted::Existing(r) if r.id == record.id), "{again:?}");
    assert_eq!(store.relayed(&record.id).await.unwrap().len(), 2);
    assert!(store.relayed("31337-0xnobody-0").await.unwrap().is_empty());

    // Another signed request spending a forwarder nonce that a pending transaction relays is refused with
    // that transaction's id, whether it is in the ledger or earlier in the same batch.
    let reuse = |key: &str, nonce: u64| NewTransaction {
        idempotency_key: Some(key.into()),
        body_sha256: key.into(),
        relayed: vec![RelayedCall { digest: key.into(), ..relayed(key, nonce) }],
        ..request.clone()
    };
    let answers = store.accept(&[(reuse("0xe1", 1), 0)], &payload).await.unwrap();
    assert!(matches!(&answers[0], Accepted::Conflict { id } if *id == record.id), "{answers:?}");
    let answers = store.accept(&[(reuse("0xe2", 5), 0), (reuse("0xe3", 5), 0)], &payload).await.unwrap();
    let Accepted::New(first) = &answers[0] else { panic!("{answers:?}") };
    assert!(matches!(&answers[1], Accepted::Conflict { id } if *id == first.id), "{answers:?}");
    // The same signed request through two relayers of one forwarder in one batch: one transaction.
    let other_relayer = |key: &str| NewTransaction {
        relayed: vec![RelayedCall { relayer: "other".into(), ..reuse("0xf1", 9).relayed[0].clone() }],
        ..reuse(key, 9)
    };
    let answers = store.accept(&[(reuse("0xf1", 9), 0), (other_relayer("0xf2"), 0)], &payload).await.unwrap();
    let Accepted::New(first) = &answers[0] else { panic!("{answers:?}") };
    assert!(matches!(&answers[1], Accepted::Conflict { id } if *id == first.id), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_under_concurrency_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    quotas_hold(&format!("sqlite://{}", dir.path().join("relay.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_under_concurrency_on_postgres() {
    let Some(db) = common::postgres("quotas_hold_under_concurrency_on_postgres", "relay").await else {
        return;
    };
    quotas_hold(&db.url).await;
    db.drop().await;
}
