//! Delivery against the real services: the sample Gemforce traffic indexed into SQLite and Postgres, then
//! dispatched to RabbitMQ (publisher confirms) and to a signed-webhook receiver. Every event arrives (once
//! after deduplication by id), in order per ordering key; a dispatcher killed with SIGKILL and restarted
//! loses nothing; a broker cut off for 30 seconds gets its backlog once it is back; a reorg sends
//! retractions to a `latest` sink and nothing reorged to a `finalized` one.
//!
//! RabbitMQ is read from `GEMGATE_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).

#[path = "../../../crates/indexer/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, catch_up, chain, indexer, store, stored_events};
use futures::StreamExt;
use gemgate_domain::ports::{OutboxStore, Sink};
use gemgate_outbox::{DispatchMetrics, DispatchSettings, Dispatcher};
use gemgate_sinks::amqp::AmqpSink;
use gemgate_sinks::signature::{DEFAULT_TOLERANCE_SECS, unix_now, verify};
use gemgate_sinks::webhook::WebhookSink;
use gemgate_store::SqlStore;
use gemgate_testkit::{AnvilOptions, SplitMix64, TcpProxy};
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

fn amqp_url() -> String {
    std::env::var("GEMGATE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One message as a consumer received it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    routing_key: String,
    status: String,
    ordering: (u64, u64),
}

/// A consumer of a queue bound to the sink's exchange, collecting in the background.
struct Consumer {
    received: Arc<Mutex<Vec<Received>>>,
    _connection: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
}

impl Consumer {
    /// Connects to RabbitMQ and declares `queue`; `None` (skipped) when it is unreachable outside CI.
    async fn start(test: &str, queue: &str) -> Option<Consumer> {
        let properties = lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection =
            reachable(test, "RabbitMQ", lapin::Connection::connect(&amqp_url(), properties).await)?;
        let channel = connection.create_channel().await.unwrap();
        // Declared as the sink declares it (durable), whichever comes first.
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(queue, durable, FieldTable::default()).await.unwrap();
        Some(Consumer {
            received: Arc::default(),
            _connection: connection,
            channel,
            queue: queue.to_string(),
        })
    }

    /// Starts consuming (after the sink declared and bound the queue to its exchange).
    async fn consume(&self) {
        let mut consumer = self
            .channel
            .basic_consume(
                &self.queue,
                "test",
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let received = self.received.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
                let id = delivery.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default();
                assert_eq!(body["id"].as_str(), Some(id.as_str()), "message_id is the envelope's id");
                received.lock().unwrap().push(Received {
                    id,
                    routing_key: delivery.routing_key.to_string(),
                    status: body["status"].as_str().unwrap_or_default().to_string(),
                    ordering: (body["block_number"].as_u64().unwrap(), body["log_index"].as_u64().unwrap()),
                });
            }
        });
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received, or panics after `timeout`.
    async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {} received",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete(self) {
        let _ = self.channel.queue_delete(&self.queue, QueueDeleteOptions::default()).await;
    }
}

fn fast_settings(sink: &str) -> DispatchSettings {
    DispatchSettings {
        poll_interval: Duration::from_millis(20),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        ..DispatchSettings::new(sink)
    }
}

/// A connection to a service the test needs: `None` (reported as skipped) when it is unreachable outside CI.
fn reachable<T, E: std::fmt::Display>(test: &str, service: &str, connected: Result<T, E>) -> Option<T> {
    match connected {
        Ok(value) => Some(value),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{service} unreachable under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: {service} unreachable ({e})");
            None
        }
    }
}

/// The sample traffic (`rounds` of it) indexed into a fresh SQLite store, and the stored events.
async fn indexed_scenario(
    test: &str,
    rounds: u32,
) -> Option<(common::Chain, common::TestStore, Vec<gemgate_domain::ChainEvent>)> {
    let chain = chain(test, rounds, AnvilOptions::default()).await?;
    let db = store(Backend::Sqlite, test).await?;
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let events = stored_events(&db.store).await;
    Some((chain, db, events))
}

/// Every message in the outbox, in order.
async fn outbox_messages(store: &SqlStore) -> Vec<gemgate_domain::OutboxMessage> {
    store
        .outbox_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            gemgate_domain::ports::OutboxEntry::Message(m) => Some(m),
            gemgate_domain::ports::OutboxEntry::Reverted { .. } => None,
        })
        .collect()
}

fn dispatcher(store: &SqlStore, sink: Arc<dyn Sink>, settings: DispatchSettings) -> Dispatcher {
    Dispatcher::new(Arc::new(store.clone()), sink, settings, DispatchMetrics::default())
}

/// The first arrival of every id, and each id's count.
fn first_arrivals(received: &[Received]) -> (Vec<Received>, HashMap<String, usize>) {
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

async fn scenario_reaches_rabbitmq(backend: Backend, test: &str) {
    let Some(chain) = chain(test, 3, AnvilOptions::default()).await else { return };
    let Some(db) = store(backend, test).await else { return };
    let queue = unique("gemgate-test-q");
    let Some(consumer) = Consumer::start(test, &queue).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let events = stored_events(&db.store).await;
    assert!(events.len() > 100, "the scenario emits a few hundred events");

    let exchange = unique("gemgate-test-x");
    let sink = Arc::new(AmqpSink::new("rabbit", amqp_url().parse().unwrap(), &exchange, Some(queue.clone())));
    let mut dispatcher = dispatcher(&db.store, sink, fast_settings("rabbit"));
    dispatcher.round().await.unwrap(); // declares the exchange, the queue and its binding
    consumer.consume().await;
    while dispatcher.round().await.unwrap().read > 0 {}
    let received =
        consumer.wait_for(Duration::from_secs(30), "every event", |r| r.len() >= events.len()).await;

    let (firsts, counts) = first_arrivals(&received);
    let expected: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let got: BTreeSet<String> = firsts.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got, expected, "every stored event is delivered, nothing else");
    assert!(counts.values().all(|n| *n == 1), "no duplicate without a crash");
    // Routing keys name chain, contract and event; order holds within every ordering key.
    let by_id: HashMap<String, &gemgate_domain::ChainEvent> =
        events.iter().map(|e| (e.id.to_string(), e)).collect();
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    for r in &firsts {
        let event = by_id[&r.id];
        assert_eq!(r.routing_key, format!("31337.{}.{}", event.contract, event.event));
        let key = event.ordering_key();
        if let Some(previous) = last.insert(key.clone(), r.ordering) {
            assert!(previous < r.ordering, "key {key}: {previous:?} arrived before {:?}", r.ordering);
        }
    }
    let position = db.store.sink_position("rabbit").await.unwrap().position;
    assert!(position >= events.len() as u64, "the stored position covers every outbox row");
    consumer.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_reaches_rabbitmq_exactly_once_in_order_per_key_on_sqlite() {
    scenario_reaches_rabbitmq(
        Backend::Sqlite,
        "scenario_reaches_rabbitmq_exactly_once_in_order_per_key_on_sqlite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_reaches_rabbitmq_exactly_once_in_order_per_key_on_postgres() {
    scenario_reaches_rabbitmq(
        Backend::Postgres,
        "scenario_reaches_rabbitmq_exactly_once_in_order_per_key_on_postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_sends_retractions_to_latest_sinks_and_nothing_reorged_to_finalized_ones() {
    let test = "reorg_sends_retractions_to_latest_sinks_and_nothing_reorged_to_finalized_ones";
    let Some(chain) = chain(test, 2, AnvilOptions::default()).await else { return };
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let (latest_q, final_q) = (unique("gemgate-test-latest"), unique("gemgate-test-final"));
    let Some(latest) = Consumer::start(test, &latest_q).await else { return };
    let Some(finalized) = Consumer::start(test, &final_q).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let before: BTreeSet<String> = stored_events(&db.store).await.iter().map(|e| e.id.to_string()).collect();

    let exchange = |name: &str| unique(name);
    let latest_sink = Arc::new(AmqpSink::new(
        "latest",
        amqp_url().parse().unwrap(),
        &exchange("x-latest"),
        Some(latest_q.clone()),
    ));
    let final_sink = Arc::new(AmqpSink::new(
        "final",
        amqp_url().parse().unwrap(),
        &exchange("x-final"),
        Some(final_q.clone()),
    ));
    let mut to_latest = dispatcher(&db.store, latest_sink, fast_settings("latest"));
    let final_settings =
        DispatchSettings { finality: gemgate_domain::Finality::Finalized, ..fast_settings("final") };
    let mut to_final = dispatcher(&db.store, final_sink, final_settings);
    to_latest.round().await.unwrap();
    to_final.round().await.unwrap();
    latest.consume().await;
    finalized.consume().await;
    while to_latest.round().await.unwrap().read > 0 {}
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
    let retracted = latest
        .wait_for(Duration::from_secs(30), "retractions", |r| {
            r.iter().filter(|m| m.status == "retracted").count() >= reverted.len()
        })
        .await;
    let retracted: BTreeSet<String> =
        retracted.iter().filter(|m| m.status == "retracted").map(|m| m.id.clone()).collect();
    assert_eq!(retracted, reverted, "exactly the reverted events are retracted, with their ids");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let finals = finalized.received();
    assert!(!finals.is_empty(), "finalized events were delivered");
    assert!(finals.iter().all(|m| m.status == "canonical"), "a finalized sink never sees a retraction");
    assert!(finals.iter().all(|m| after.contains(&m.id)), "nothing reorged reached the finalized sink");
    latest.delete().await;
    finalized.delete().await;
}

/// A LogSpammer chain indexed into a fresh SQLite store: enough messages for kills and cuts to land
/// mid-stream.
async fn spammed_store(
    test: &str,
    logs: u64,
) -> Option<(gemgate_testkit::Anvil, common::TestStore, Vec<String>)> {
    let anvil = gemgate_testkit::anvil_or_skip(test, AnvilOptions { accounts: 2, ..AnvilOptions::default() })
        .await
        .unwrap()?;
    let spam = gemgate_testkit::build_log_chain(&anvil, logs / 20, logs).await.unwrap();
    let db = store(Backend::Sqlite, test).await?;
    let abi =
        gemgate_config::parse_abi(gemgate_testkit::artifacts::Artifact::named("LogSpammer").unwrap().json)
            .unwrap();
    let decoder = gemgate_projections::Decoder::new(vec![gemgate_projections::ContractAbi::new(
        "spammer",
        31337,
        spam.address,
        &[abi],
    )]);
    let mut settings = gemgate_indexer::IndexerSettings::new(31337, spam.start_block);
    settings.poll_interval = Duration::from_millis(20);
    let mut indexer = gemgate_indexer::Indexer::new(
        Arc::new(common::source(&[anvil.endpoint()])),
        Arc::new(db.store.clone()),
        Arc::new(decoder),
        settings,
        gemgate_indexer::IndexerMetrics::default(),
    );
    catch_up(&mut indexer).await;
    let ids = stored_events(&db.store).await.iter().map(|e| e.id.to_string()).collect();
    Some((anvil, db, ids))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_dispatcher_restarts_and_nothing_is_missing() {
    let test = "killed_dispatcher_restarts_and_nothing_is_missing";
    let queue = unique("gemgate-test-kill");
    let Some(consumer) = Consumer::start(test, &queue).await else { return };
    let Some((_anvil, db, ids)) = spammed_store(test, 20_000).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gemgate.toml");
    let db_url = db.url.clone();
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db_url}\"\n[[sinks]]\nname = \"rabbit\"\nkind = \"amqp\"\nurl = \"{}\"\nexchange = \"{}\"\nqueue = \"{queue}\"\n",
            amqp_url(),
            unique("gemgate-test-kill-x")
        ),
    )
    .unwrap();
    let dispatch = || {
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "dispatch", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    // The first run declares the queue's binding; consume from then on.
    let mut rng = SplitMix64::new(11);
    let mut kills_mid_stream = 0;
    for kill in 0..10 {
        let mut child = dispatch();
        if kill == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            consumer.consume().await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(20, 250))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let position = db.store.sink_position("rabbit").await.unwrap().position;
        if position < ids.len() as u64 {
            kills_mid_stream += 1;
        }
    }
    assert!(kills_mid_stream >= 3, "at least some kills landed mid-stream ({kills_mid_stream})");
    let mut last = dispatch();
    let received = consumer
        .wait_for(Duration::from_secs(120), "every event", |r| first_arrivals(r).0.len() >= ids.len())
        .await;
    last.kill().unwrap();
    last.wait().unwrap();
    let (firsts, _) = first_arrivals(&received);
    let got: BTreeSet<&str> = firsts.iter().map(|r| r.id.as_str()).collect();
    let expected: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "nothing missing, nothing invented");
    consumer.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_cut_off_for_30_seconds_gets_the_whole_backlog_once_back() {
    let test = "broker_cut_off_for_30_seconds_gets_the_whole_backlog_once_back";
    let queue = unique("gemgate-test-cut");
    let Some(consumer) = Consumer::start(test, &queue).await else { return };
    let Some((_anvil, db, ids)) = spammed_store(test, 10_000).await else { return };
    let broker = url::Url::parse(&amqp_url()).unwrap();
    let proxy = TcpProxy::start(&format!("{}:{}", broker.host_str().unwrap(), broker.port().unwrap_or(5672)))
        .await
        .unwrap();
    let mut via_proxy = broker.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.port())).unwrap();
    let sink =
        Arc::new(AmqpSink::new("rabbit", via_proxy, &unique("gemgate-test-cut-x"), Some(queue.clone())));
    let settings = DispatchSettings { page: 200, ..fast_settings("rabbit") };
    let mut dispatcher = dispatcher(&db.store, sink, settings);
    dispatcher.round().await.unwrap();
    consumer.consume().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stop_rx.await;
    }));
    consumer.wait_for(Duration::from_secs(30), "the stream to start", |r| !r.is_empty()).await;
    proxy.cut().await;
    let at_cut = consumer.received().len();
    assert!(at_cut < ids.len(), "the cut landed mid-stream ({at_cut} of {})", ids.len());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let position = db.store.sink_position("rabbit").await.unwrap().position;
    assert!(position < ids.len() as u64, "nothing counted as delivered while the broker was away");
    proxy.restore();
    let received = consumer
        .wait_for(Duration::from_secs(90), "the backlog", |r| first_arrivals(r).0.len() >= ids.len())
        .await;
    let _ = stop_tx.send(());
    running.await.unwrap().unwrap();
    let got: BTreeSet<String> = first_arrivals(&received).0.into_iter().map(|r| r.id).collect();
    assert_eq!(got, ids.iter().cloned().collect::<BTreeSet<_>>(), "the backlog drained with nothing lost");
    assert!(
        db.store.sink_backlogs(&["rabbit".into()]).await.unwrap()[0].dead_letters == 0,
        "no dead letters"
    );
    consumer.delete().await;
}

/// A webhook receiver that verifies every request with the documented scheme, answers 503 to the first
/// `fail_first` requests, and records what it accepted.
async fn webhook_receiver(
    secret: &'static [u8],
    fail_first: usize,
) -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>, Arc<Mutex<usize>>) {
    use axum::http::{HeaderMap, StatusCode};
    let accepted: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let rejected: Arc<Mutex<usize>> = Arc::default();
    let seen = Arc::new(Mutex::new(0usize));
    let (acc, rej) = (accepted.clone(), rejected.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (acc, rej, seen) = (acc.clone(), rej.clone(), seen.clone());
            async move {
                let header = |name: &str| {
                    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                };
                {
                    let mut n = seen.lock().unwrap();
                    *n += 1;
                    if *n <= fail_first {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                }
                let id = header("Gemgate-Id");
                let checked = verify(
                    &[secret],
                    &id,
                    &header("Gemgate-Timestamp"),
                    &header("Gemgate-Signature"),
                    &body,
                    unix_now(),
                    DEFAULT_TOLERANCE_SECS,
                );
                if checked.is_err() {
                    *rej.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                acc.lock().unwrap().push((id, serde_json::from_slice(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, accepted, rejected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_deliver_the_scenario_and_verify_with_the_documented_scheme() {
    let test = "signed_webhooks_deliver_the_scenario_and_verify_with_the_documented_scheme";
    let Some((_chain, db, events)) = indexed_scenario(test, 2).await else { return };

    // The receiver is down for its first 5 requests; the sink signs with the new and the previous secret
    // (rotation), and the receiver knows only the previous one.
    let (url, accepted, rejected) = webhook_receiver(b"previous-secret", 5).await;
    let sink = WebhookSink::new(
        "hook",
        url.parse().unwrap(),
        vec![b"new-secret".to_vec(), b"previous-secret".to_vec()],
        true,
    )
    .unwrap();
    let mut signed = dispatcher(&db.store, Arc::new(sink), fast_settings("hook"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while accepted.lock().unwrap().len() < events.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {} of {}",
            accepted.lock().unwrap().len(),
            events.len()
        );
        signed.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*rejected.lock().unwrap(), 0, "every request verified");
    let accepted = accepted.lock().unwrap().clone();
    let ids: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "strict order: every event once, in chain order");
    assert!(accepted.iter().all(|(id, body)| body["id"].as_str() == Some(id.as_str())));

    // A receiver with another secret refuses everything: the messages are refused (401), retried, then
    // dead-lettered; nothing is lost from the table.
    let (url, _, rejected) = webhook_receiver(b"unrelated", 0).await;
    let sink = WebhookSink::new("wrong", url.parse().unwrap(), vec![b"new-secret".to_vec()], true).unwrap();
    let settings = DispatchSettings {
        max_attempts: 2,
        events: vec!["gemforce.TradeDealCreated".into()],
        ..fast_settings("wrong")
    };
    let mut refusing = dispatcher(&db.store, Arc::new(sink), settings);
    let deals = events.iter().filter(|e| e.event == "TradeDealCreated").count() as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        refusing.round().await.unwrap();
        let backlog = db.store.sink_backlogs(&["wrong".into()]).await.unwrap().remove(0);
        if backlog.dead_letters == deals {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out dead-lettering: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(*rejected.lock().unwrap() >= 2 * deals as usize, "each refused message was tried twice");
}

/// One HTTP/1.1 request over a socket, with an optional bearer key: (status, JSON body).
async fn http(method: &str, url: &str, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("Authorization", a)]).unwrap_or_default();
    http_with(method, url, &headers, b"").await
}

async fn http_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// The API on a free port over `store`, with `keys` and an optional Gemforce webhook secret.
async fn api(
    store: &SqlStore,
    keys: Vec<gemgate_config::ApiKey>,
    sinks: Vec<gemgate_api::SinkInfo>,
    webhook_secret: Option<&str>,
) -> (String, gemgate_api::WebhookMetrics) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let webhooks = gemgate_api::WebhookMetrics::default();
    let state = gemgate_api::AppState {
        store: store.clone(),
        metrics: gemgate_telemetry::Metrics::new(),
        settings: Arc::new(gemgate_config::ApiSettings {
            listen: listener.local_addr().unwrap(),
            public_reads: true,
            keys,
            gemforce_webhook_secret: webhook_secret.map(|s| gemgate_config::Secret::new(s.to_string())),
        }),
        gemforce: Arc::default(),
        sinks: Arc::new(sinks),
        webhooks: webhooks.clone(),
    };
    tokio::spawn(gemgate_api::serve(listener, gemgate_api::router(state), std::future::pending()));
    (base, webhooks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_endpoints_show_the_backlog_and_pausing_needs_an_admin_key() {
    use gemgate_config::{ApiKey, Scope};
    use sha2::Digest;
    let test = "sink_endpoints_show_the_backlog_and_pausing_needs_an_admin_key";
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let key = |name: &str, secret: &str, scopes: Vec<Scope>| ApiKey {
        name: name.into(),
        key_sha256: sha2::Sha256::digest(secret.as_bytes()).into(),
        scopes,
    };
    let keys = vec![key("ops", "admin-key", vec![Scope::Admin]), key("app", "read-key", vec![Scope::Read])];
    let sinks = vec![gemgate_api::SinkInfo {
        name: "rabbit".into(),
        kind: "amqp".into(),
        finality: "finalized".into(),
    }];
    let (base, _) = api(&db.store, keys, sinks, None).await;

    let (status, body) = http("GET", &format!("{base}/v1/sinks"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["sinks"][0]["name"], "rabbit");
    assert_eq!(body["sinks"][0]["finality"], "finalized");
    assert_eq!(body["sinks"][0]["paused"], false);
    let pause = format!("{base}/v1/sinks/rabbit/pause");
    assert_eq!(http("POST", &pause, None).await.0, 401, "no key");
    assert_eq!(http("POST", &pause, Some("guess")).await.0, 401, "unknown key");
    assert_eq!(http("POST", &pause, Some("read-key")).await.0, 403, "a read key cannot pause");
    assert_eq!(http("POST", &pause, Some("admin-key")).await.0, 200);
    assert!(
        db.store.sink_position("rabbit").await.unwrap().paused,
        "the pause is stored for the dispatchers"
    );
    let (_, status_body) = http("GET", &format!("{base}/v1/status"), None).await;
    assert_eq!(status_body["sinks"][0]["paused"], true);
    assert_eq!(http("POST", &format!("{base}/v1/sinks/nope/pause"), Some("admin-key")).await.0, 404);
    assert_eq!(http("POST", &format!("{base}/v1/sinks/rabbit/resume"), Some("admin-key")).await.0, 200);
    assert!(!db.store.sink_position("rabbit").await.unwrap().paused);
}

/// Reads `count` server-sent events from `GET path` (HTTP/1.0, so the body is not chunked): (id, event, data).
async fn sse_events(
    base: &str,
    path: &str,
    last_event_id: Option<u64>,
    count: usize,
) -> Vec<(u64, String, serde_json::Value)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let host = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n{resume}\r\n").as_bytes())
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let (mut events, mut current) = (Vec::new(), (0u64, String::new(), serde_json::Value::Null));
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(id) = line.strip_prefix("id: ") {
                current.0 = id.parse().unwrap();
            } else if let Some(event) = line.strip_prefix("event: ") {
                current.1 = event.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                current.2 = serde_json::from_str(data).unwrap();
            } else if line.is_empty() && !current.2.is_null() {
                events.push(std::mem::replace(&mut current, (0, String::new(), serde_json::Value::Null)));
                if events.len() == count {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("the stream delivers");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_serves_the_outbox_as_server_sent_events_and_resumes_after_last_event_id() {
    let test = "stream_serves_the_outbox_as_server_sent_events_and_resumes_after_last_event_id";
    let Some((_chain, db, events)) = indexed_scenario(test, 1).await else { return };
    let (base, _) = api(&db.store, Vec::new(), Vec::new(), None).await;

    let all = sse_events(&base, "/v1/stream", None, events.len()).await;
    let ids: Vec<String> = all.iter().map(|(_, _, data)| data["id"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "every event, in chain order");
    assert!(all.iter().all(|(_, event, _)| event == "canonical"));
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "SSE ids are increasing outbox positions");

    let resumed = sse_events(&base, "/v1/stream", Some(all[4].0), 3).await;
    assert_eq!(resumed[0].0, all[5].0, "Last-Event-ID resumes right after that event");
    assert_eq!(resumed[0].2["id"], all[5].2["id"]);
    let (status, _) = http("GET", &format!("{base}/v1/stream?after=abc"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemforce_webhooks_are_verified_deduplicated_stored_and_queued_for_the_sinks() {
    use hmac::Mac;
    let test = "gemforce_webhooks_are_verified_deduplicated_stored_and_queued_for_the_sinks";
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let (base, metrics) = api(&db.store, Vec::new(), Vec::new(), Some("gemforce-secret")).await;
    let url = format!("{base}/v1/webhooks/gemforce");
    let body = br#"{"id":"evt_1","type":"trade_deal.funded","data":{"tradeDealId":"7"}}"#;
    let sign = |secret: &[u8], body: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    let good = sign(b"gemforce-secret", body);
    let post = |signature: String, body: &'static [u8]| {
        let url = url.clone();
        async move { http_with("POST", &url, &[("X-Gemforce-Signature", signature.as_str())], body).await }
    };
    let (status, answer) = post(good.clone(), body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, serde_json::json!({"id": "evt_1", "duplicate": false}));
    let (status, answer) = post(good.clone(), body).await;
    assert_eq!(
        (status, answer["duplicate"].as_bool()),
        (202, Some(true)),
        "the same delivery again is a duplicate"
    );

    let tampered = br#"{"id":"evt_1","type":"trade_deal.funded","data":{"tradeDealId":"8"}}"#;
    assert_eq!(post(good.clone(), tampered).await.0, 401, "a tampered body");
    assert_eq!(post(sign(b"other", body), body).await.0, 401, "a wrong secret");
    assert_eq!(post(String::new(), body).await.0, 401, "no signature");
    assert_eq!(metrics.rejected.get(), 3, "refusals are counted");
    assert_eq!(metrics.accepted.get(), 2);

    let entries = db.store.outbox_after(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "one outbox row for the one stored webhook");
    let gemgate_domain::ports::OutboxEntry::Message(message) = &entries[0] else { panic!("{entries:?}") };
    assert_eq!(message.kind, "webhook.gemforce");
    assert_eq!(message.payload_json()["data"]["tradeDealId"], "7");

    let (base, _) = api(&db.store, Vec::new(), Vec::new(), None).await;
    let (status, _) = http_with("POST", &format!("{base}/v1/webhooks/gemforce"), &[], body).await;
    assert_eq!(status, 404, "without a configured secret the endpoint does not exist");
}

fn nats_url() -> String {
    std::env::var("GEMGATE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_reaches_nats_jetstream_exactly_once_in_order_per_key() {
    use async_nats::jetstream;
    let test = "scenario_reaches_nats_jetstream_exactly_once_in_order_per_key";
    let Some(client) = reachable(test, "NATS", async_nats::connect(nats_url()).await) else { return };
    let Some((_chain, db, events)) = indexed_scenario(test, 2).await else { return };

    let (stream, subject) = (unique("GEMGATE-TEST"), unique("gemgate-test"));
    let sink =
        Arc::new(gemgate_sinks::nats::NatsSink::new("nats", nats_url().parse().unwrap(), &subject, &stream));
    let mut dispatcher = dispatcher(&db.store, sink.clone(), fast_settings("nats"));
    while dispatcher.round().await.unwrap().read > 0 {}
    // Everything again, as after a crash before the position was stored: JetStream drops the duplicates.
    let all = outbox_messages(&db.store).await;
    sink.publish(&all[..20]).await.unwrap();

    let js = jetstream::new(client);
    let info = js.get_stream(&stream).await.unwrap().info().await.unwrap().clone();
    assert_eq!(
        info.state.messages,
        events.len() as u64,
        "one stream message per event, re-sends deduplicated by Nats-Msg-Id"
    );
    let consumer = js
        .get_stream(&stream)
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut received = Vec::new();
    while received.len() < events.len() {
        let message =
            tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let msg_id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
        assert_eq!(msg_id.as_deref(), body["id"].as_str(), "Nats-Msg-Id is the envelope id");
        let event = events.iter().find(|e| e.id.to_string() == body["id"].as_str().unwrap()).unwrap();
        assert_eq!(message.subject.as_str(), format!("{subject}.31337.{}.{}", event.contract, event.event));
        received.push(body["id"].as_str().unwrap().to_string());
        message.ack().await.unwrap();
    }
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(received, expected, "every event once, in chain order (hence in order per key)");
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_consumer_projection_equals_the_indexers_despite_duplicates() {
    let test = "reference_consumer_projection_equals_the_indexers_despite_duplicates";
    let Some(chain) = chain(test, 3, AnvilOptions::default()).await else { return };
    let Some(db) = store(Backend::Sqlite, test).await else { return };
    let queue = unique("gemgate-test-consume");
    let Some(probe) = Consumer::start(test, &queue).await else { return };
    let mut indexer = indexer(&chain, &db.store, &[chain.anvil.endpoint()]);
    catch_up(&mut indexer).await;
    let events = stored_events(&db.store).await;

    let sink = Arc::new(AmqpSink::new(
        "rabbit",
        amqp_url().parse().unwrap(),
        &unique("gemgate-test-consume-x"),
        Some(queue.clone()),
    ));
    let mut dispatcher = dispatcher(&db.store, sink.clone(), fast_settings("rabbit"));
    while dispatcher.round().await.unwrap().read > 0 {}
    // Half the messages once more, as a dispatcher restarted before storing its position would send them.
    let again: Vec<_> = outbox_messages(&db.store).await.into_iter().take(events.len() / 2).collect();
    sink.publish(&again).await.unwrap();
    drop(probe);

    let dir = tempfile::tempdir().unwrap();
    let consumer_db = format!("sqlite://{}", dir.path().join("consumer.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args([
            "--log-filter",
            "warn",
            "consume",
            "--amqp",
            &amqp_url(),
            "--queue",
            &queue,
            "--database",
            &consumer_db,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let consumer = gemgate_consumer::IdempotentConsumer::open(&consumer_db, "reader").await.unwrap();
    let kinds = [
        gemgate_projections::ColumnKind::Text,
        gemgate_projections::ColumnKind::Text,
        gemgate_projections::ColumnKind::Text,
        gemgate_projections::ColumnKind::Int,
        gemgate_projections::ColumnKind::Text,
        gemgate_projections::ColumnKind::Int,
    ];
    let deals = db
        .store
        .projection_rows(&gemgate_projections::gemforce::tables::TRADE_DEALS, None, None, 1_000)
        .await
        .unwrap();
    let expected: Vec<(String, String, String, i64, String, i64)> = deals
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
    assert!(expected.len() >= 2, "the scenario creates trade deals");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let rows = match consumer.database().begin().await {
            Ok(mut owned) => owned
                .tx()
                .fetch(
                    "SELECT trade_deal_id, name, symbol, created_block, created_tx, events FROM consumer_trade_deals ORDER BY trade_deal_id",
                    Vec::new(),
                    &kinds,
                )
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let got: Vec<(String, String, String, i64, String, i64)> = rows
            .iter()
            .map(|r| {
                let text = |i: usize| r[i].as_text().unwrap_or_default().to_string();
                let int = |i: usize| match r[i] {
                    gemgate_projections::Cell::Int(n) => n,
                    _ => -1,
                };
                (text(0), text(1), text(2), int(3), text(4).to_lowercase(), int(5))
            })
            .collect();
        if got == expected || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    let mut got_sorted = got;
    got_sorted.sort();
    assert_eq!(
        got_sorted, expected_sorted,
        "the consumer's projection equals the indexer's, each event applied once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_requeued_and_a_sink_replays_from_a_block() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let test = "dead_letters_are_requeued_and_a_sink_replays_from_a_block";
    let Some((_chain, db, events)) = indexed_scenario(test, 2).await else { return };

    // A receiver that refuses TradeDealCreated (400) until `accept_deals` is set, and records the rest.
    let accept_deals = Arc::new(AtomicBool::new(false));
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = {
        let (accept_deals, received) = (accept_deals.clone(), received.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (accept_deals, received) = (accept_deals.clone(), received.clone());
                async move {
                    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    if envelope["event"] == "TradeDealCreated" && !accept_deals.load(Ordering::SeqCst) {
                        return axum::http::StatusCode::BAD_REQUEST;
                    }
                    received.lock().unwrap().push(envelope["id"].as_str().unwrap().to_string());
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sink = WebhookSink::new("hook", url.parse().unwrap(), vec![b"s".to_vec()], false).unwrap();
    let mut hook =
        dispatcher(&db.store, Arc::new(sink), DispatchSettings { max_attempts: 2, ..fast_settings("hook") });

    let deals = events.iter().filter(|e| e.event == "TradeDealCreated").count() as u64;
    let backlog = |db: SqlStore| async move { db.sink_backlogs(&["hook".into()]).await.unwrap().remove(0) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while backlog(db.store.clone()).await.dead_letters < deals || hook.position() < events.len() as u64 {
        assert!(tokio::time::Instant::now() < deadline, "dead-lettering timed out");
        hook.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: BTreeSet<String> = received.lock().unwrap().iter().cloned().collect();
    assert_eq!(got.len() as u64, events.len() as u64 - deals, "everything but the refused deals arrived");

    // Requeue: the refused deals are sent again once the receiver takes them.
    accept_deals.store(true, Ordering::SeqCst);
    assert_eq!(db.store.requeue_dead_letters("hook").await.unwrap(), deals);
    assert_eq!(backlog(db.store.clone()).await.dead_letters, 0);
    let all: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    while received.lock().unwrap().iter().cloned().collect::<BTreeSet<_>>() != all {
        assert!(tokio::time::Instant::now() < deadline, "requeued messages did not arrive");
        hook.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Replay from a block: exactly the events from that block on arrive once more.
    let from = events[events.len() / 2].block_number;
    let again = events.iter().filter(|e| e.block_number >= from).count();
    while hook.round().await.unwrap().read > 0 {}
    let before = received.lock().unwrap().len();
    let position = db
        .store
        .position_before(gemgate_store::delivery::ReplayFrom::Block { chain_id: Some(31337), block: from })
        .await
        .unwrap();
    db.store.rewind_sink("hook", position).await.unwrap();
    while hook.position() < events.len() as u64 || received.lock().unwrap().len() < before + again {
        assert!(tokio::time::Instant::now() < deadline, "the replay did not arrive");
        hook.round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replayed: Vec<String> = received.lock().unwrap()[before..].to_vec();
    let expected: BTreeSet<String> =
        events.iter().filter(|e| e.block_number >= from).map(|e| e.id.to_string()).collect();
    assert_eq!(replayed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(replayed.len(), again, "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_reaches_redis_streams_in_order_with_ids() {
    let test = "scenario_reaches_redis_streams_in_order_with_ids";
    let url = std::env::var("GEMGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).unwrap();
    let Some(mut connection) = reachable(test, "Redis", client.get_multiplexed_async_connection().await)
    else {
        return;
    };
    let Some((_chain, db, events)) = indexed_scenario(test, 2).await else { return };

    let stream = unique("gemgate-test-stream");
    let sink = Arc::new(gemgate_sinks::redis::RedisSink::new("redis", url.parse().unwrap(), &stream, None));
    let mut to_stream = dispatcher(&db.store, sink, fast_settings("redis"));
    while to_stream.round().await.unwrap().read > 0 {}
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut connection).await.unwrap();
    let ids: Vec<String> = entries
        .iter()
        .map(|(_, fields)| {
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
            let body: serde_json::Value = serde_json::from_str(&field("body")).unwrap();
            assert_eq!(body["id"].as_str(), Some(field("id").as_str()), "the id field is the envelope's id");
            assert_eq!(field("status"), "canonical");
            field("id")
        })
        .collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "every event once, in chain order");

    // MAXLEN: a capped stream keeps about that many entries.
    let capped = unique("gemgate-test-capped");
    let sink =
        Arc::new(gemgate_sinks::redis::RedisSink::new("capped", url.parse().unwrap(), &capped, Some(10)));
    let mut to_capped = dispatcher(&db.store, sink, fast_settings("capped"));
    while to_capped.round().await.unwrap().read > 0 {}
    let length: u64 = redis::cmd("XLEN").arg(&capped).query_async(&mut connection).await.unwrap();
    assert!(length < events.len() as u64, "trimmed: {length} of {}", events.len());
    let _: () = redis::cmd("DEL").arg(&stream).arg(&capped).query_async(&mut connection).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cut_off_for_30_seconds_gets_the_whole_backlog_once_back() {
    use async_nats::jetstream;
    let test = "nats_cut_off_for_30_seconds_gets_the_whole_backlog_once_back";
    let Some(client) = reachable(test, "NATS", async_nats::connect(nats_url()).await) else { return };
    let Some((_anvil, db, ids)) = spammed_store(test, 10_000).await else { return };
    let server = url::Url::parse(&nats_url()).unwrap();
    let proxy = TcpProxy::start(&format!("{}:{}", server.host_str().unwrap(), server.port().unwrap_or(4222)))
        .await
        .unwrap();
    let via_proxy: url::Url = format!("nats://127.0.0.1:{}", proxy.port()).parse().unwrap();
    let (stream, subject) = (unique("GEMGATE-CUT"), unique("gemgate-cut"));
    let sink = Arc::new(gemgate_sinks::nats::NatsSink::new("nats", via_proxy, &subject, &stream));
    let settings = DispatchSettings { page: 200, ..fast_settings("nats") };
    let dispatcher = dispatcher(&db.store, sink, settings);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stop_rx.await;
    }));
    let js = jetstream::new(client);
    let stored = |js: jetstream::Context, stream: String| async move {
        match js.get_stream(&stream).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stored(js.clone(), stream.clone()).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut().await;
    let at_cut = stored(js.clone(), stream.clone()).await;
    assert!(at_cut < ids.len() as u64, "the cut landed mid-stream ({at_cut} of {})", ids.len());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        db.store.sink_position("nats").await.unwrap().position < ids.len() as u64,
        "nothing counted as delivered while NATS was away"
    );
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while stored(js.clone(), stream.clone()).await < ids.len() as u64 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    running.await.unwrap().unwrap();
    assert_eq!(
        stored(js.clone(), stream.clone()).await,
        ids.len() as u64,
        "every event once in the stream (re-sends deduplicated by Nats-Msg-Id)"
    );
    assert_eq!(db.store.sink_backlogs(&["nats".into()]).await.unwrap()[0].dead_letters, 0);
    js.delete_stream(&stream).await.unwrap();
}
