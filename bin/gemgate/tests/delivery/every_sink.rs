//! The delivery guarantees, each tested against every sink kind through its probe: the scenario arrives
//! exactly once after deduplication by id and in order per key; a dispatcher killed with SIGKILL at random
//! moments loses nothing; a service cut off for 30 seconds gets the whole backlog once it is back; a reorg
//! retracts on a `latest` sink and shows nothing reorged to a `finalized` one; and `gemgate consume`
//! reading the sink builds the same trade-deal projection as the indexer, despite duplicates.

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use gemgate_domain::ports::OutboxStore;
use gemgate_outbox::DispatchSettings;
use gemgate_testkit::{AnvilOptions, SplitMix64};

use crate::common::{Backend, catch_up, chain, indexer, store, stored_events};
use crate::probes::{Kind, Probe, Received};
use crate::{dispatcher, fast_settings, indexed_scenario, outbox_messages, spammed_store};

/// The first arrival of every (id, status), and how often each arrived.
pub fn first_arrivals(received: &[Received]) -> (Vec<Received>, HashMap<String, usize>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut firsts = Vec::new();
    for r in received {
        let n = counts.entry(format!("{}:{}", r.id, r.status)).or_default();
        if *n == 0 {
            firsts.push(r.clone());
        }
        *n += 1;
    }
    (firsts, counts)
}

fn distinct(received: &[Received]) -> BTreeSet<String> {
    first_arrivals(received).0.into_iter().map(|r| r.id).collect()
}

async fn scenario(kind: Kind, test: &str, backend: Backend) {
    let Some(probe) = Probe::start(kind, test, false).await else { return };
    let Some((_chain, db, events)) = indexed_scenario(test, 2, backend).await else { return };
    assert!(events.len() > 100, "the scenario emits a few hundred events");
    let mut dispatcher = dispatcher(&db.store, probe.sink("sink"), fast_settings("sink"));
    while dispatcher.round().await.unwrap().read > 0 {}
    probe.wait_for(Duration::from_secs(30), "every event", |r| r.len() >= events.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // time for a duplicate to show
    let received = probe.received();

    let (firsts, counts) = first_arrivals(&received);
    let expected: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(distinct(&received), expected, "{kind:?}: every stored event is delivered, nothing else");
    assert!(counts.values().all(|n| *n == 1), "{kind:?}: no duplicate without a crash");
    let by_id: HashMap<String, &gemgate_domain::ChainEvent> =
        events.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    for r in &firsts {
        let event = by_id[&r.id];
        if let Some(route) = probe.expected_route(event) {
            assert_eq!(r.route, route, "{kind:?}: the message is routed by chain, contract and event");
        }
        let key = event.ordering_key();
        if let Some(previous) = last.insert(key.clone(), r.ordering) {
            assert!(
                previous < r.ordering,
                "{kind:?} key {key}: {previous:?} arrived before {:?}",
                r.ordering
            );
        }
    }
    let position = db.store.sink_position("sink").await.unwrap().position;
    assert!(position >= events.len() as u64, "the stored position covers every outbox row");
    probe.cleanup().await;
}

/// Runs `gemgate dispatch` on a config with this probe's sink.
pub(crate) fn dispatch_process(config: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["--log-filter", "warn", "dispatch", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn killed(kind: Kind, test: &str) {
    let Some(probe) = Probe::start(kind, test, false).await else { return };
    let Some((_anvil, db, ids)) = spammed_store(test, 10_000).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gemgate.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n{}", db.url, probe.sink_toml("sink")))
        .unwrap();
    let position = || async { db.store.sink_position("sink").await.unwrap().position };
    let mut rng = SplitMix64::new(11);
    let mut kills_mid_stream = 0;
    for _ in 0..10 {
        let before = position().await;
        let mut child = dispatch_process(&config);
        // Killed at a random moment once this run has delivered something (or after 5 s). Within 20 ms: a
        // fast sink (Kafka) delivers thousands of events in 60 ms, and kills after the stream's end prove
        // nothing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while position().await == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 20))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = position().await;
        if now > 0 && now < ids.len() as u64 {
            kills_mid_stream += 1;
        }
    }
    assert!(kills_mid_stream >= 3, "{kind:?}: at least some kills landed mid-stream ({kills_mid_stream})");
    let mut last = dispatch_process(&config);
    let received =
        probe.wait_for(Duration::from_secs(120), "every event", |r| distinct(r).len() >= ids.len()).await;
    last.kill().unwrap();
    last.wait().unwrap();
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct(&received), expected, "{kind:?}: nothing missing, nothing invented");
    probe.cleanup().await;
}

async fn cut_off(kind: Kind, test: &str) {
    let Some(probe) = Probe::start(kind, test, true).await else { return };
    let Some((_anvil, db, ids)) = spammed_store(test, 10_000).await else { return };
    let settings = DispatchSettings { page: 200, ..fast_settings("sink") };
    let dispatcher = dispatcher(&db.store, probe.sink("sink"), settings);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stop_rx.await;
    }));
    let position = || async { db.store.sink_position("sink").await.unwrap().position };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while position().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{kind:?}: the stream did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    probe.cut().await;
    let at_cut = position().await;
    assert!(at_cut < ids.len() as u64, "{kind:?}: the cut landed mid-stream ({at_cut} of {})", ids.len());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = position().await;
    assert!(during < ids.len() as u64, "{kind:?}: nothing counted as delivered while the service was away");
    probe.restore();
    let received =
        probe.wait_for(Duration::from_secs(120), "the backlog", |r| distinct(r).len() >= ids.len()).await;
    let _ = stop_tx.send(());
    running.await.unwrap().unwrap();
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct(&received), expected, "{kind:?}: the backlog drained with nothing lost");
    let backlog = db.store.sink_backlogs(&["sink".into()]).await.unwrap().remove(0);
    assert_eq!(backlog.dead_letters, 0, "{kind:?}: an outage spends no attempts");
    probe.cleanup().await;
}

async fn reorged(kind: Kind, test: &str, backend: Backend) {
    let Some(latest) = Probe::start(kind, test, false).await else { return };
    let Some(finalized) = Probe::start(kind, test, false).await else { return };
    let Some(chain) = chain(test, 2, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let before: BTreeSet<String> = stored_events(&db.store).await.iter().map(|e| e.id.to_string()).collect();

    let mut to_latest = dispatcher(&db.store, latest.sink("latest"), fast_settings("latest"));
    let final_settings =
        DispatchSettings { finality: gemgate_domain::Finality::Finalized, ..fast_settings("final") };
    let mut to_final = dispatcher(&db.store, finalized.sink("final"), final_settings);
    while to_latest.round().await.unwrap().read > 0 {}
    to_final.round().await.unwrap();
    latest
        .wait_for(Duration::from_secs(30), "every event on the latest sink", |r| r.len() >= before.len())
        .await;

    // Reorg the top 3 blocks (their transactions are not replayed), then index the new branch.
    chain.anvil.reorg(3).await.unwrap();
    chain.anvil.mine(20).await.unwrap();
    catch_up(&mut indexer).await;
    let after: BTreeSet<String> = stored_events(&db.store).await.iter().map(|e| e.id.to_string()).collect();
    let reverted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert!(!reverted.is_empty(), "the reorg removed events");
    while to_latest.round().await.unwrap().read > 0 {}
    for _ in 0..3 {
        to_final.round().await.unwrap();
    }
    let received = latest
        .wait_for(Duration::from_secs(30), "retractions", |r| {
            r.iter().filter(|m| m.status == "retracted").count() >= reverted.len()
        })
        .await;
    let retracted: BTreeSet<String> =
        received.iter().filter(|m| m.status == "retracted").map(|m| m.id.clone()).collect();
    assert_eq!(retracted, reverted, "{kind:?}: exactly the reverted events are retracted, with their ids");

    finalized.wait_for(Duration::from_secs(30), "finalized events", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // time for anything wrong to show
    let finals = finalized.received();
    assert!(
        finals.iter().all(|m| m.status == "canonical"),
        "{kind:?}: a finalized sink never sees a retraction"
    );
    assert!(
        finals.iter().all(|m| after.contains(&m.id)),
        "{kind:?}: nothing reorged reached the finalized sink"
    );
    latest.cleanup().await;
    finalized.cleanup().await;
}

/// `(trade_deal_id, name, symbol, created_block, created_tx, events)` rows of a trade-deal projection.
type DealRow = (String, String, String, i64, String, i64);

/// The indexer's own trade deals, in the shape of the reference consumer's projection.
async fn indexer_deals(db: &gemgate_store::SqlStore, events: &[gemgate_domain::ChainEvent]) -> Vec<DealRow> {
    let deals = db
        .projection_rows(&gemgate_projections::gemforce::tables::TRADE_DEALS, None, None, 1_000)
        .await
        .unwrap();
    let mut rows: Vec<DealRow> = deals
        .iter()
        .map(|d| {
            let id = d["trade_deal_id"].as_str().unwrap().to_string();
            let touching = events
                .iter()
                .filter(|e| e.args.get("tradeDealId").and_then(|v| v.as_str()) == Some(id.as_str()))
                .count();
            (
                id,
                d["name"].as_str().unwrap().to_string(),
                d["symbol"].as_str().unwrap().to_string(),
                d["created_block"].as_i64().unwrap(),
                d["created_tx"].as_str().unwrap().to_lowercase(),
                touching as i64,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The reference consumer's projection in its database (empty while it is not there yet).
async fn consumer_deals(consumer: &gemgate_consumer::IdempotentConsumer) -> Vec<DealRow> {
    use gemgate_projections::{Cell, ColumnKind};
    let kinds = [
        ColumnKind::Text,
        ColumnKind::Text,
        ColumnKind::Text,
        ColumnKind::Int,
        ColumnKind::Text,
        ColumnKind::Int,
    ];
    let Ok(mut owned) = consumer.database().begin().await else { return Vec::new() };
    let rows = owned
        .tx()
        .fetch(
            "SELECT trade_deal_id, name, symbol, created_block, created_tx, events FROM consumer_trade_deals ORDER BY trade_deal_id",
            Vec::new(),
            &kinds,
        )
        .await
        .unwrap_or_default();
    let mut rows: Vec<DealRow> = rows
        .iter()
        .map(|r| {
            let text = |i: usize| r[i].as_text().unwrap_or_default().to_string();
            let int = |i: usize| match r[i] {
                Cell::Int(n) => n,
                _ => -1,
            };
            (text(0), text(1), text(2), int(3), text(4).to_lowercase(), int(5))
        })
        .collect();
    rows.sort();
    rows
}

async fn consumed(kind: Kind, test: &str) {
    let Some(mut probe) = Probe::start(kind, test, false).await else { return };
    let Some((_chain, db, events)) = indexed_scenario(test, 3, Backend::Sqlite).await else { return };
    let expected = indexer_deals(&db.store, &events).await;
    assert!(expected.len() >= 2, "the scenario creates trade deals");
    probe.hand_over().await;

    let dir = tempfile::tempdir().unwrap();
    let consumer_db = format!("sqlite://{}", dir.path().join("consumer.db").display());
    let mut args = vec!["--log-filter".to_string(), "warn".into(), "consume".into()];
    args.extend(probe.consume_args());
    args.extend(["--database".to_string(), consumer_db.clone()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Everything once, then half the messages again, as a dispatcher restarted before storing its
    // position would send them.
    let sink = probe.sink("sink");
    let mut dispatcher = dispatcher(&db.store, sink.clone(), fast_settings("sink"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while db.store.sink_position("sink").await.unwrap().position < events.len() as u64 {
        assert!(tokio::time::Instant::now() < deadline, "{kind:?}: dispatching timed out");
        dispatcher.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again: Vec<_> = outbox_messages(&db.store).await.into_iter().take(events.len() / 2).collect();
    sink.publish(&again).await.unwrap();

    let consumer = gemgate_consumer::IdempotentConsumer::open(&consumer_db, "reader").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = consumer_deals(&consumer).await;
        if got == expected || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        got, expected,
        "{kind:?}: the consumer's projection equals the indexer's, each event applied once"
    );
    probe.cleanup().await;
}

macro_rules! every_sink {
    ($($kind:ident: $scenario:ident, $killed:ident, $cut:ident, $reorged:ident, $consumed:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            scenario(Kind::$kind, stringify!($scenario), Backend::Sqlite).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $killed() {
            killed(Kind::$kind, stringify!($killed)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $cut() {
            cut_off(Kind::$kind, stringify!($cut)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $reorged() {
            reorged(Kind::$kind, stringify!($reorged), Backend::Sqlite).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $consumed() {
            consumed(Kind::$kind, stringify!($consumed)).await;
        }
    )*};
}

every_sink! {
    Amqp: rabbitmq_gets_the_scenario_once_in_order_per_key, rabbitmq_loses_nothing_to_sigkills,
        rabbitmq_cut_off_30s_drains_the_backlog, rabbitmq_gets_retractions_and_finalized_only_canonical,
        rabbitmq_consumer_projection_equals_the_indexers;
    Kafka: kafka_gets_the_scenario_once_in_order_per_key, kafka_loses_nothing_to_sigkills,
        kafka_cut_off_30s_drains_the_backlog, kafka_gets_retractions_and_finalized_only_canonical,
        kafka_consumer_projection_equals_the_indexers;
    Nats: nats_gets_the_scenario_once_in_order_per_key, nats_loses_nothing_to_sigkills,
        nats_cut_off_30s_drains_the_backlog, nats_gets_retractions_and_finalized_only_canonical,
        nats_consumer_projection_equals_the_indexers;
    Redis: redis_gets_the_scenario_once_in_order_per_key, redis_loses_nothing_to_sigkills,
        redis_cut_off_30s_drains_the_backlog, redis_gets_retractions_and_finalized_only_canonical,
        redis_consumer_projection_equals_the_indexers;
    Webhook: webhook_gets_the_scenario_once_in_order_per_key, webhook_loses_nothing_to_sigkills,
        webhook_cut_off_30s_drains_the_backlog, webhook_gets_retractions_and_finalized_only_canonical,
        webhook_consumer_projection_equals_the_indexers;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_gets_the_scenario_once_in_order_per_key_from_postgres() {
    let test = "rabbitmq_gets_the_scenario_once_in_order_per_key_from_postgres";
    scenario(Kind::Amqp, test, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_gets_retractions_and_finalized_only_canonical_from_postgres() {
    let test = "rabbitmq_gets_retractions_and_finalized_only_canonical_from_postgres";
    reorged(Kind::Amqp, test, Backend::Postgres).await;
}
