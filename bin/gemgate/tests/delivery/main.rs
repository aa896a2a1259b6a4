//! Delivery against the real services. `every_sink` runs each guarantee (the scenario exactly once and in
//! order per key, SIGKILLs, a 30 s outage, a reorg, the reference consumer's projection) against every sink
//! kind through the probes in `probes`; this file holds what is specific to one sink or to the API: webhook
//! secret rotation and refusals, dead letters and replays, the sink endpoints, the SSE stream, inbound
//! Gemforce webhooks, JetStream's duplicate window and Redis MAXLEN.
//!
//! Services: `GEMGATE_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `GEMGATE_TEST_KAFKA_BROKERS` (`127.0.0.1:9092`), `GEMGATE_TEST_NATS_URL` (`nats://127.0.0.1:4222`),
//! `GEMGATE_TEST_REDIS_URL` (`redis://127.0.0.1:6379`), `GEMGATE_TEST_POSTGRES_URL`.

#[path = "../../../../crates/indexer/tests/common/mod.rs"]
mod common;
mod every_sink;
mod formats;
mod handover;
mod probes;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, catch_up, chain, indexer, store, stored_events};
use gemgate_domain::ports::{OutboxStore, Sink};
use gemgate_outbox::{DispatchMetrics, DispatchSettings, Dispatcher};
use gemgate_sinks::signature::verify_request;
use gemgate_sinks::webhook::WebhookSink;
use gemgate_store::SqlStore;
use gemgate_testkit::AnvilOptions;

fn amqp_url() -> String {
    std::env::var("GEMGATE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn nats_url() -> String {
    std::env::var("GEMGATE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn redis_url() -> String {
    std::env::var("GEMGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
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
        Err(e) if gemgate_testkit::under_ci() => {
            panic!("{service} unreachable under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: {service} unreachable ({e})");
            None
        }
    }
}

/// The sample traffic (`rounds` of it) indexed into a fresh store, and the stored events.
async fn indexed_scenario(
    test: &str,
    rounds: u32,
    backend: Backend,
) -> Option<(common::Chain, common::TestStore, Vec<gemgate_domain::ChainEvent>)> {
    let chain = chain(test, rounds, AnvilOptions::default()).await?;
    let db = store(backend, test).await?;
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

/// A LogSpammer chain indexed into a fresh SQLite store: enough messages for kills and cuts to land
/// mid-stream.
async fn spammed_store(
    test: &str,
    logs: u64,
) -> Option<(gemgate_testkit::Anvil, common::TestStore, Vec<String>)> {
    spammed_store_on(test, logs, Backend::Sqlite).await
}

/// `spammed_store` on either backend.
async fn spammed_store_on(
    test: &str,
    logs: u64,
    backend: Backend,
) -> Option<(gemgate_testkit::Anvil, common::TestStore, Vec<String>)> {
    let anvil = gemgate_testkit::anvil_or_skip(test, AnvilOptions { accounts: 2, ..AnvilOptions::default() })
        .await
        .unwrap()?;
    let spam = gemgate_testkit::build_log_chain(&anvil, logs / 20, logs).await.unwrap();
    let db = store(backend, test).await?;
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
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                {
                    let mut n = seen.lock().unwrap();
                    *n += 1;
                    if *n <= fail_first {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                }
                let Ok(id) = verify_request(&[secret], header, &body) else {
                    *rej.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                };
                acc.lock().unwrap().push((id.to_string(), serde_json::from_slice(&body).unwrap()));
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
    let Some((_chain, db, events)) = indexed_scenario(test, 2, Backend::Sqlite).await else { return };

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
        events: gemgate_domain::MessageFilter::new(vec!["gemforce.TradeDealCreated".into()]),
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
        store: gemgate_api::StorePorts::of(store),
        metrics: gemgate_telemetry::Metrics::new(),
        settings: Arc::new(gemgate_config::ApiSettings {
            listen: listener.local_addr().unwrap(),
            public_reads: true,
            keys,
            gemforce_webhook_secret: webhook_secret.map(|s| gemgate_config::Secret::new(s.to_string())),
            cors: gemgate_config::CorsSettings::default(),
            jwt: None,
            rate_limits: gemgate_config::RateLimits::default(),
            parse: None,
            max_body_bytes: 1 << 20,
        }),
        gemforce: Arc::default(),
        sinks: Arc::new(sinks),
        webhooks: webhooks.clone(),
        http: gemgate_api::HttpMetrics::default(),
        txm: None,
        calls: None,
        relay: None,
        jwt: None,
        limits: Arc::default(),
        parse: None,
        history: Arc::default(),
        cluster: None,
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
    let Some((_chain, db, events)) = indexed_scenario(test, 1, Backend::Sqlite).await else { return };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_drops_resent_messages_by_msg_id() {
    use async_nats::jetstream;
    let test = "nats_jetstream_drops_resent_messages_by_msg_id";
    let Some(client) = reachable(test, "NATS", async_nats::connect(nats_url()).await) else { return };
    let Some((_chain, db, events)) = indexed_scenario(test, 2, Backend::Sqlite).await else { return };
    let (stream, subject) = (unique("GEMGATE-TEST"), unique("gemgate-test"));
    let sink =
        Arc::new(gemgate_sinks::nats::NatsSink::new("nats", nats_url().parse().unwrap(), &subject, &stream));
    let mut dispatcher = dispatcher(&db.store, sink.clone(), fast_settings("nats"));
    while dispatcher.round().await.unwrap().read > 0 {}
    // Messages again, as after a crash before the position was stored: JetStream drops the duplicates.
    let all = outbox_messages(&db.store).await;
    sink.publish(&all[..20]).await.unwrap();
    let js = jetstream::new(client);
    let info = js.get_stream(&stream).await.unwrap().info().await.unwrap().clone();
    assert_eq!(
        info.state.messages,
        events.len() as u64,
        "one stream message per event, re-sends deduplicated by Nats-Msg-Id"
    );
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_requeued_and_a_sink_replays_from_a_block() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let test = "dead_letters_are_requeued_and_a_sink_replays_from_a_block";
    let Some((_chain, db, events)) = indexed_scenario(test, 2, Backend::Sqlite).await else { return };

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
async fn redis_stream_with_maxlen_is_trimmed() {
    let test = "redis_stream_with_maxlen_is_trimmed";
    let Some(mut connection) = reachable(test, "Redis", probes::redis_connection().await) else { return };
    let Some((_chain, db, events)) = indexed_scenario(test, 2, Backend::Sqlite).await else { return };
    let capped = unique("gemgate-test-capped");
    let sink = Arc::new(gemgate_sinks::redis::RedisSink::new(
        "capped",
        redis_url().parse().unwrap(),
        &capped,
        Some(10),
    ));
    let mut to_capped = dispatcher(&db.store, sink, fast_settings("capped"));
    while to_capped.round().await.unwrap().read > 0 {}
    let length: u64 = redis::cmd("XLEN").arg(&capped).query_async(&mut connection).await.unwrap();
    assert!(length < events.len() as u64, "trimmed: {length} of {}", events.len());
    let _: () = redis::cmd("DEL").arg(&capped).query_async(&mut connection).await.unwrap();
}

/// API replicas are stateless: a client that read the stream from one `gemgate serve` process resumes on
/// another with `Last-Event-ID` and gets exactly what came next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_on_another_api_replica_with_last_event_id() {
    let test = "the_stream_resumes_on_another_api_replica_with_last_event_id";
    let Some((_chain, db, events)) = indexed_scenario(test, 1, Backend::Postgres).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gemgate.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let replicas: Vec<(String, std::process::Child)> = (0..2)
        .map(|_| {
            let listen = format!("127.0.0.1:{}", free());
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_gemgate"))
                .args(["--log-filter", "warn", "serve", "--config", config.to_str().unwrap()])
                .env("GEMGATE__API__LISTEN", &listen)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (format!("http://{listen}"), child)
        })
        .collect();
    for (base, _) in &replicas {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(base.strip_prefix("http://").unwrap()).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "{base} listens");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let first = sse_events(&replicas[0].0, "/v1/stream", None, 10).await;
    let rest = sse_events(&replicas[1].0, "/v1/stream", Some(first[9].0), events.len() - 10).await;
    let ids: Vec<String> =
        first.iter().chain(&rest).map(|(_, _, data)| data["id"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected, "the second replica continues right after the last event the first one sent");
    for (_, mut child) in replicas {
        let _ = child.kill();
        let _ = child.wait();
    }
}
