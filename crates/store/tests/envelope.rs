//! The dispatchers' envelope, built straight from the stored row, is exactly the API's typed envelope.

use alloy_primitives::{Address, B256, Bytes};
use gemgate_domain::ports::{Batch, Heads, OutboxEntry, OutboxStore, Store};
use gemgate_domain::{BlockRef, ChainEvent, ENVELOPE_SCHEMA, EventId, EventStatus, FinalityLevel};
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_store::read::EventQuery;

fn event(block: u64, log: u64, args: serde_json::Value) -> ChainEvent {
    let block_hash = B256::repeat_byte(block as u8);
    ChainEvent {
        id: EventId::derive(31337, block_hash, log),
        chain_id: 31337,
        block_number: block,
        block_hash,
        tx_hash: B256::repeat_byte(0xab),
        tx_index: 2,
        log_index: log,
        address: "0x5FbDB2315678afecb367f032d93F642f64180aa3".parse::<Address>().unwrap(),
        contract: "gemforce".into(),
        event: if args.is_null() { String::new() } else { "TradeDealCreated".into() },
        signature: B256::repeat_byte(0x11),
        args,
        topics: vec![B256::repeat_byte(0x11), B256::repeat_byte(0x22)],
        data: Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
        status: EventStatus::Canonical,
        finality: FinalityLevel::Latest,
        tx_from: None,
        schema: ENVELOPE_SCHEMA,
    }
}

#[tokio::test]
async fn outbox_envelopes_equal_the_typed_envelopes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    envelopes_equal(&url).await;
}

#[tokio::test]
async fn outbox_envelopes_equal_the_typed_envelopes_on_postgres() {
    let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
    let server = match SqlStore::connect(&admin, 1, ProjectionSet::default()).await {
        Ok(server) => server,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Postgres unreachable under CI: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED outbox_envelopes_equal_the_typed_envelopes_on_postgres: Postgres unreachable ({e})"
            );
            return;
        }
    };
    let name = format!("gemgate_envelope_{}", std::process::id());
    server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    server.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
    envelopes_equal(&format!("{}/{name}", admin.rsplit_once('/').unwrap().0)).await;
    server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}

async fn envelopes_equal(url: &str) {
    let store = SqlStore::connect(url, 2, ProjectionSet::gemforce_for(Vec::new())).await.unwrap();
    store.migrate().await.unwrap();
    let events = vec![
        event(7, 0, serde_json::json!({"tradeDealId": "1", "amount": "1000000", "nested": {"a": [1, 2]}})),
        event(7, 1, serde_json::Value::Null),
        event(8, 0, serde_json::json!({"tradeDealId": "2"})),
    ];
    let cursor = BlockRef { number: 8, hash: B256::repeat_byte(8), parent_hash: B256::repeat_byte(7) };
    let batch = Batch {
        chain_id: 31337,
        blocks: vec![],
        events,
        outbox: vec![],
        previous: None,
        cursor,
        finalized: 0,
    };
    store.commit_batch(&batch).await.unwrap();
    store.record_heads(31337, &Heads { latest: 9, safe: 8, finalized: 7 }).await.unwrap();

    let typed = store.events(&EventQuery { limit: 10, ..EventQuery::default() }).await.unwrap().events;
    let outbox = store.outbox_after(0, 10).await.unwrap();
    assert_eq!(outbox.len(), typed.len());
    for (entry, event) in outbox.iter().zip(&typed) {
        let OutboxEntry::Message(message) = entry else { panic!("{entry:?}") };
        assert_eq!(message.payload_json(), serde_json::to_value(event).unwrap(), "event {}", event.id);
        assert_eq!(
            (message.contract.as_str(), message.event.as_str()),
            (event.contract.as_str(), event.event.as_str())
        );
    }
    let OutboxEntry::Message(first) = &outbox[0] else { unreachable!() };
    assert_eq!(first.payload_json()["finality"], "finalized", "finality as of the read");
    let OutboxEntry::Message(last) = &outbox[2] else { unreachable!() };
    assert_eq!(last.payload_json()["finality"], "safe");
    store.close().await;
}
