//! The dispatchers' envelope, built straight from the stored row, is exactly the API's typed envelope.

mod common;

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
    let Some(db) =
        common::postgres("outbox_envelopes_equal_the_typed_envelopes_on_postgres", "envelope").await
    else {
        return;
    };
    envelopes_equal(&db.url).await;
    db.drop().await;
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
        fence: None,
    };
    store.commit_batch(&batch).await.unwrap();
    store.record_heads(31337, &Heads { latest: 9, safe: 8, finalized: 7 }, None).await.unwrap();

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
    assert_eq!(
        outbox.iter().map(OutboxEntry::seq).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "rows in commit order"
    );
    assert_eq!((first.chain_id, first.block_number, first.kind.as_str()), (31337, Some(7), "event"));
    assert_eq!(first.ordering_key, typed[0].ordering_key());

    // A reorg back to block 7: block 8's row now has no event (Reverted), and its retraction follows with
    // a body of its own, carrying the same id, contract and event.
    store
        .revert_to(31337, &BlockRef { number: 7, hash: B256::repeat_byte(7), parent_hash: B256::ZERO }, None)
        .await
        .unwrap();
    let outbox = store.outbox_after(0, 10).await.unwrap();
    assert_eq!(outbox.len(), 4, "{outbox:?}");
    let reverted_id = typed[2].id.to_string();
    assert!(
        matches!(&outbox[2], OutboxEntry::Reverted { seq: 3, id } if *id == reverted_id),
        "{:?}",
        outbox[2]
    );
    let OutboxEntry::Message(retraction) = &outbox[3] else { panic!("{:?}", outbox[3]) };
    assert_eq!(retraction.status, EventStatus::Retracted);
    assert_eq!(retraction.id, reverted_id);
    assert_eq!((retraction.contract.as_str(), retraction.event.as_str()), ("gemforce", "TradeDealCreated"));
    assert_eq!(retraction.payload_json()["status"], "retracted");
    assert_eq!(retraction.payload_json()["id"], reverted_id);
    assert_eq!(store.outbox_after(3, 10).await.unwrap().len(), 1, "reading after a position");
    assert!(store.outbox_after(4, 10).await.unwrap().is_empty(), "an empty page");
    store.close().await;
}
