//! What sinks send, checked with independent implementations of the standards (the published JavaScript
//! libraries in the test kit), never with gemgate's own helpers: `gemgate dispatch` signs webhooks that the
//! Standard Webhooks library verifies, and sends CloudEvents (`format = "cloudevents"`, structured and
//! binary) that the CloudEvents SDK decodes from webhooks, Kafka, RabbitMQ, NATS and Redis Streams.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use gemgate_testkit::js::{decode_cloudevents, webhook_receiver};
use serde_json::Value;

use crate::common::Backend;
use crate::every_sink::dispatch_process;
use crate::indexed_scenario;
use crate::probes::{Kind, Probe};
use crate::reachable;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_b3RoZXItc2VjcmV0LW9mLTI0LWJ5dGVzLWF0LWxlYXN0";

/// Checks a decoded CloudEvent against the envelope it must carry as its data.
fn assert_event_carries(event: &Value, envelope: &Value, chain_id: u64) {
    let id = envelope["id"].as_str().unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["data"], *envelope, "the data is the envelope, unchanged");
    assert_eq!(event["gemgateid"], id, "the stable event id is an extension attribute");
    assert_eq!(event["gemgatestatus"], envelope["status"]);
    assert_eq!(
        event["type"].as_str().unwrap(),
        format!(
            "gemgate.event.{}.{}",
            envelope["contract"].as_str().unwrap(),
            envelope["event"].as_str().unwrap()
        )
    );
    assert_eq!(
        event["source"].as_str().unwrap(),
        format!("eip155:{chain_id}:{}", envelope["address"].as_str().unwrap()),
        "the source is the emitting contract as a CAIP-10 account"
    );
    let ce_id = event["id"].as_str().unwrap();
    let position = ce_id.strip_prefix(&format!("{id}:")).expect("the id is <event id>:<outbox position>");
    assert!(position.parse::<u64>().is_ok(), "{ce_id}");
    assert!(event["partitionkey"].as_str().is_some_and(|k| !k.is_empty()), "{event}");
    assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')), "a UTC time: {event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_verify_with_the_standard_webhooks_library_and_decode_as_cloudevents() {
    let test = "webhooks_verify_with_the_standard_webhooks_library_and_decode_as_cloudevents";
    let Some(receiver) =
        reachable(test, "the JavaScript reference libraries", webhook_receiver(SECRET).await)
    else {
        return;
    };
    let Some((chain, db, events)) = indexed_scenario(test, 1, Backend::Sqlite).await else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good"), SECRET).unwrap();
    std::fs::write(dir.path().join("other"), OTHER_SECRET).unwrap();
    let sink = |name: &str, secret: &str, extra: &str| {
        format!(
            "[[sinks]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"{}\"\n{extra}\n",
            receiver.url(&format!("/{name}")),
            dir.path().join(secret).display()
        )
    };
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n{}{}{}{}",
            db.url,
            sink("plain", "good", "strict_order = true"),
            sink("binary", "good", "format = \"cloudevents\"\ncontent_mode = \"binary\""),
            sink("structured", "good", "format = \"cloudevents\""),
            sink("wrong", "other", "max_attempts = 1"),
        ),
    )
    .unwrap();
    let mut dispatch = dispatch_process(&config);
    let on = |lines: &[Value], path: &str, verified: bool| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["path"] == path && l.get("refused").is_none() == verified)
            .cloned()
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let lines = loop {
        let lines = receiver.received();
        let done =
            ["/plain", "/binary", "/structured"].iter().all(|p| on(&lines, p, true).len() >= events.len())
                && on(&lines, "/wrong", false).len() >= events.len();
        if done {
            break lines;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out; {} requests received", lines.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    dispatch.kill().unwrap();
    dispatch.wait().unwrap();

    assert!(on(&lines, "/wrong", true).is_empty(), "a signature by another secret never verifies");
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    let plain = on(&lines, "/plain", true);
    let ids: Vec<String> = plain.iter().map(|l| l["body"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, expected, "every event once, in chain order (strict_order)");
    let mut envelopes: HashMap<String, Value> = HashMap::new();
    for line in &plain {
        let id = line["body"]["id"].as_str().unwrap();
        assert_eq!(line["content_type"], "application/json");
        assert_eq!(line["event"], Value::Null, "no CloudEvent without format = \"cloudevents\"");
        let webhook_id = line["webhook_id"].as_str().unwrap();
        assert!(webhook_id.starts_with(&format!("{id}:")), "webhook-id is one per outbox row: {webhook_id}");
        envelopes.insert(id.to_string(), line["body"].clone());
    }
    for (path, content_type) in
        [("/binary", "application/json"), ("/structured", "application/cloudevents+json")]
    {
        let got = on(&lines, path, true);
        let mut seen = BTreeSet::new();
        for line in &got {
            let event = &line["event"];
            let id = event["gemgateid"].as_str().unwrap_or_else(|| panic!("{path}: not decoded: {line}"));
            assert_event_carries(event, &envelopes[id], chain.anvil.chain_id());
            assert_eq!(event["id"], line["webhook_id"], "{path}: the CloudEvents id is the webhook id");
            assert!(line["content_type"].as_str().unwrap().starts_with(content_type), "{path}: {line}");
            seen.insert(id.to_string());
        }
        assert_eq!(seen, expected.iter().cloned().collect(), "{path}: every event, as a CloudEvent");
    }
}

/// Dispatches the scenario with `gemgate dispatch` to a raw probe of `kind` in CloudEvents `mode`, and
/// decodes every message with the SDK.
async fn broker_cloudevents(kind: Kind, mode: &str, test: &str) {
    let Some(probe) = Probe::start_raw(kind, test).await else { return };
    let Some((chain, db, events)) = indexed_scenario(test, 1, Backend::Sqlite).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gemgate.toml");
    let sink = format!("{}format = \"cloudevents\"\ncontent_mode = \"{mode}\"\n", probe.sink_toml("sink"));
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n{sink}", db.url)).unwrap();
    let mut dispatch = dispatch_process(&config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while probe.wires().len() < events.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}: {} of {}",
            probe.wires().len(),
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dispatch.kill().unwrap();
    dispatch.wait().unwrap();

    let wires = probe.wires();
    let decoded = reachable(test, "the JavaScript reference libraries", decode_cloudevents(&wires).await)
        .expect("decoded");
    assert_eq!(decoded.len(), wires.len());
    let mut seen = BTreeSet::new();
    for (wire, decoded) in wires.iter().zip(&decoded) {
        let event = decoded.get("event").unwrap_or_else(|| panic!("{kind:?} {mode}: {decoded} for {wire}"));
        let envelope = &event["data"];
        assert_event_carries(event, envelope, chain.anvil.chain_id());
        let stored = events.iter().find(|e| e.id.to_string() == envelope["id"].as_str().unwrap()).unwrap();
        assert_eq!(envelope["block_number"], stored.block_number, "the data is the stored event");
        if kind == Kind::Kafka {
            assert_eq!(wire["key"], event["partitionkey"], "the Kafka key is the partition key");
        }
        seen.insert(envelope["id"].as_str().unwrap().to_string());
    }
    let expected: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(seen, expected, "{kind:?} {mode}: every event, once, as a CloudEvent");
    probe.cleanup().await;
}

macro_rules! cloudevents_over {
    ($($name:ident: $kind:ident $mode:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            broker_cloudevents(Kind::$kind, $mode, stringify!($name)).await;
        }
    )*};
}

cloudevents_over! {
    kafka_cloudevents_binary_decode_with_the_sdk: Kafka "binary";
    kafka_cloudevents_structured_decode_with_the_sdk: Kafka "structured";
    amqp_cloudevents_binary_decode_with_the_sdk: Amqp "binary";
    amqp_cloudevents_structured_decode_with_the_sdk: Amqp "structured";
    nats_cloudevents_binary_decode_with_the_sdk: Nats "binary";
    nats_cloudevents_structured_decode_with_the_sdk: Nats "structured";
    redis_cloudevents_structured_decode_with_the_sdk: Redis "structured";
}
