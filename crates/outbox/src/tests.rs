//! The dispatcher's rules over an in-memory outbox and a scripted sink (pure logic; the real stores and
//! brokers are exercised by the integration tests).

use std::sync::Mutex;

use async_trait::async_trait;
use gemgate_domain::cluster::Fence;
use gemgate_domain::ports::SinkPosition;
use serde_json::json;

use super::*;

#[derive(Default)]
struct MemoryOutbox {
    rows: Mutex<Vec<OutboxEntry>>,
    reads: Mutex<u32>,
    position: Mutex<SinkPosition>,
    dead: Mutex<Vec<(String, u32)>>,
    heads: Mutex<Option<Heads>>,
}

#[async_trait]
impl OutboxStore for MemoryOutbox {
    async fn sink_position(&self, _: &str) -> Result<SinkPosition, StoreError> {
        Ok(*self.position.lock().unwrap())
    }
    async fn outbox_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        let rows = self.rows.lock().unwrap();
        Ok(rows.iter().filter(|e| e.seq() > after).take(limit as usize).cloned().collect())
    }
    async fn advance_sink(&self, _: &str, position: u64, _: Option<&Fence>) -> Result<(), StoreError> {
        let mut stored = self.position.lock().unwrap();
        stored.position = stored.position.max(position);
        Ok(())
    }
    async fn dead_letter(
        &self,
        _: &str,
        m: &OutboxMessage,
        attempts: u32,
        _: &str,
        _: Option<&Fence>,
    ) -> Result<(), StoreError> {
        self.dead.lock().unwrap().push((m.id.clone(), attempts));
        Ok(())
    }
    async fn chain_heads(&self, _: ChainId) -> Result<Option<Heads>, StoreError> {
        Ok(*self.heads.lock().unwrap())
    }
}

/// Records what it accepted; refuses ids in `refuse`; is unreachable while `down` is set.
#[derive(Default)]
struct ScriptedSink {
    accepted: Mutex<Vec<String>>,
    refuse: Mutex<HashSet<String>>,
    down: Mutex<bool>,
}

#[async_trait]
impl Sink for ScriptedSink {
    fn name(&self) -> &str {
        "scripted"
    }
    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure> {
        if *self.down.lock().unwrap() {
            let error = SinkError::Unavailable { sink: "scripted".into(), message: "down".into() };
            return Err(SinkFailure { delivered: 0, error });
        }
        for (i, m) in messages.iter().enumerate() {
            if self.refuse.lock().unwrap().contains(&m.id) {
                let error = SinkError::Rejected {
                    sink: "scripted".into(),
                    message_id: m.id.clone(),
                    message: "no".into(),
                };
                return Err(SinkFailure { delivered: i, error });
            }
            self.accepted.lock().unwrap().push(format!("{}:{}", m.id, status_text(m.status)));
        }
        Ok(())
    }
}

fn status_text(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Canonical => "c",
        EventStatus::Retracted => "r",
    }
}

fn message(seq: u64, id: &str, key: &str, block: u64, status: EventStatus) -> OutboxEntry {
    OutboxEntry::Message(OutboxMessage {
        seq,
        id: id.into(),
        kind: "event".into(),
        chain_id: 1,
        block_number: Some(block),
        ordering_key: key.into(),
        status,
        contract: "gemforce".into(),
        event: if key == "a" { "A" } else { "B" }.into(),
        payload: json!({"id": id}).to_string().into(),
    })
}

fn setup(
    rows: Vec<OutboxEntry>,
    settings: DispatchSettings,
) -> (Arc<MemoryOutbox>, Arc<ScriptedSink>, Dispatcher) {
    let store = Arc::new(MemoryOutbox::default());
    *store.rows.lock().unwrap() = rows;
    let sink = Arc::new(ScriptedSink::default());
    let dispatcher = Dispatcher::new(store.clone(), sink.clone(), settings, DispatchMetrics::default());
    (store, sink, dispatcher)
}

fn fast(sink: &str) -> DispatchSettings {
    DispatchSettings {
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(2),
        max_attempts: 3,
        ..DispatchSettings::new(sink)
    }
}

use EventStatus::{Canonical, Retracted};

#[tokio::test]
async fn a_refused_message_holds_back_only_its_own_key_then_is_dead_lettered() {
    let rows = vec![
        message(1, "a1", "a", 1, Canonical),
        message(2, "b1", "b", 1, Canonical),
        message(3, "a2", "a", 2, Canonical),
        message(4, "b2", "b", 2, Canonical),
    ];
    let (store, sink, mut dispatcher) = setup(rows, fast("s"));
    sink.refuse.lock().unwrap().insert("a1".into());
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["b1:c", "b2:c"], "key b goes on, a2 waits behind a1");
    assert_eq!(store.position.lock().unwrap().position, 0, "position stays before the refused message");
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        dispatcher.round().await.unwrap();
    }
    assert_eq!(*store.dead.lock().unwrap(), vec![("a1".to_string(), 3)]);
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["b1:c", "b2:c", "a2:c"], "a2 follows once a1 is parked");
    assert_eq!(store.position.lock().unwrap().position, 4);
}

#[tokio::test]
async fn an_unreachable_sink_counts_no_attempts_and_the_backlog_drains_when_it_is_back() {
    let rows: Vec<_> = (1..=5).map(|i| message(i, &format!("m{i}"), "a", i, Canonical)).collect();
    let (store, sink, mut dispatcher) = setup(rows, fast("s"));
    *sink.down.lock().unwrap() = true;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        dispatcher.round().await.unwrap();
    }
    assert!(store.dead.lock().unwrap().is_empty(), "being unreachable is not the message's fault");
    assert_eq!(store.position.lock().unwrap().position, 0);
    *sink.down.lock().unwrap() = false;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        dispatcher.round().await.unwrap();
    }
    assert_eq!(sink.accepted.lock().unwrap().len(), 5);
    assert_eq!(store.position.lock().unwrap().position, 5);
}

#[tokio::test]
async fn retractions_reach_latest_sinks_only_for_events_they_received() {
    let rows = vec![
        message(1, "e1", "a", 1, Canonical),
        // e2 was reverted before any read: its row has no envelope any more.
        OutboxEntry::Reverted { seq: 2, id: "e2".into() },
        message(3, "e2", "a", 2, Retracted),
        message(4, "e1", "a", 1, Retracted),
    ];
    let (_, sink, mut dispatcher) = setup(rows, fast("s"));
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["e1:c", "e1:r"]);
}

#[tokio::test]
async fn a_finalized_sink_waits_for_finality_and_never_sees_retractions() {
    let rows = vec![
        message(1, "e1", "a", 1, Canonical),
        message(2, "e2", "a", 5, Canonical),
        message(3, "e3", "a", 9, Retracted),
        message(4, "e4", "a", 6, Canonical),
    ];
    let settings = DispatchSettings { finality: Finality::Finalized, ..fast("s") };
    let (store, sink, mut dispatcher) = setup(rows, settings);
    *store.heads.lock().unwrap() = Some(Heads { latest: 10, safe: 8, finalized: 4 });
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["e1:c"]);
    assert_eq!(store.position.lock().unwrap().position, 1);
    *store.heads.lock().unwrap() = Some(Heads { latest: 12, safe: 10, finalized: 10 });
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["e1:c", "e2:c", "e4:c"]);
    assert_eq!(store.position.lock().unwrap().position, 4);
}

#[tokio::test]
async fn the_event_filter_skips_other_events_but_moves_the_position() {
    let rows = vec![message(1, "a1", "a", 1, Canonical), message(2, "b1", "b", 1, Canonical)];
    let settings = DispatchSettings { events: MessageFilter::new(vec!["gemforce.B".into()]), ..fast("s") };
    let (store, sink, mut dispatcher) = setup(rows, settings);
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["b1:c"]);
    assert_eq!(store.position.lock().unwrap().position, 2);
}

#[tokio::test]
async fn a_restarted_dispatcher_resumes_after_its_stored_position() {
    let rows: Vec<_> = (1..=3).map(|i| message(i, &format!("m{i}"), "a", i, Canonical)).collect();
    let (store, sink, _) = setup(rows, fast("s"));
    store.position.lock().unwrap().position = 2;
    let mut dispatcher = Dispatcher::new(store.clone(), sink.clone(), fast("s"), DispatchMetrics::default());
    dispatcher.round().await.unwrap();
    assert_eq!(*sink.accepted.lock().unwrap(), vec!["m3:c"]);
}

#[tokio::test]
async fn each_page_is_read_once_the_next_while_the_previous_is_published() {
    let rows = (1..=100).map(|i| message(i, &format!("e{i}"), "a", i, EventStatus::Canonical)).collect();
    let (store, sink, mut dispatcher) = setup(rows, DispatchSettings { page: 10, ..fast("s") });
    while dispatcher.round().await.unwrap().read > 0 {}
    assert_eq!(sink.accepted.lock().unwrap().len(), 100);
    // 10 pages and the empty read that ends it; reading each page twice would take about 20.
    let reads = *store.reads.lock().unwrap();
    assert!(reads <= 12, "{reads} reads for 10 pages");
}
