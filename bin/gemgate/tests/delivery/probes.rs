//! One probe per sink kind, so every delivery guarantee is tested against every sink the same way. A
//! probe reaches the real service, prepares what a consumer would (a queue, a topic, a stream, a
//! receiver), writes the `[[sinks]]` entry that delivers there (optionally through a `TcpProxy` it can cut),
//! and collects in the background what arrives, checking each transport's own id field against the
//! envelope's id.
//!
//! Services: `GEMGATE_TEST_AMQP_URL`, `GEMGATE_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`),
//! `GEMGATE_TEST_NATS_URL`, `GEMGATE_TEST_REDIS_URL`; the webhook receiver is an HTTP server in the test.
//! A cuttable Kafka probe runs its own broker (`tansu`, found through `GEMGATE_TEST_TANSU`, `PATH` or the
//! CI cache), because Kafka clients connect to the address a broker advertises, not to the one they
//! were given: the private broker advertises the proxy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gemgate_domain::ports::Sink;
use gemgate_sinks::signature::verify_webhook;
use gemgate_testkit::TcpProxy;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::Headers;

use crate::{amqp_url, nats_url, reachable, redis_url, unique};

/// One message as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub status: String,
    pub ordering: (u64, u64),
    /// Where the transport put it: routing key, subject or Kafka key (empty where there is none).
    pub route: String,
}

impl Received {
    fn from_body(id: &str, body: &[u8], route: String) -> Received {
        let body: serde_json::Value = serde_json::from_slice(body).expect("the body is a JSON envelope");
        assert_eq!(body["id"].as_str(), Some(id), "the transport's id is the envelope's id");
        Received {
            id: id.to_string(),
            status: body["status"].as_str().unwrap_or_default().to_string(),
            ordering: (
                body["block_number"].as_u64().unwrap_or_default(),
                body["log_index"].as_u64().unwrap_or_default(),
            ),
            route,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Amqp,
    Kafka,
    Nats,
    Redis,
    Webhook,
}

impl Kind {
    fn service(self) -> &'static str {
        match self {
            Kind::Amqp => "RabbitMQ",
            Kind::Kafka => "Kafka",
            Kind::Nats => "NATS",
            Kind::Redis => "Redis",
            Kind::Webhook => "the webhook receiver",
        }
    }
}

pub fn kafka_brokers() -> String {
    std::env::var("GEMGATE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A Standard Webhooks secret (the default scheme of webhook sinks).
const SECRET: &str = "whsec_cHJvYmUtd2ViaG9vay1zZWNyZXQtMjQtYnl0ZXM=";
const KAFKA_PARTITIONS: i32 = 3;

pub struct Probe {
    pub kind: Kind,
    /// The queue, topic, stream or subject this probe reads.
    pub name: String,
    dir: tempfile::TempDir,
    received: Arc<Mutex<Vec<Received>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `host:port` the sink is configured with: the service, or the proxy in front of it.
    address: String,
    proxy: Option<TcpProxy>,
    broker: Option<std::process::Child>,
    amqp: Option<(lapin::Connection, lapin::Channel)>,
    /// With `start_raw`: every message as it came off the wire, in the shape the CloudEvents decoder of
    /// the test kit reads (`{"binding", "headers", "key", "value"}` or `{"binding", "headers", "body"}`),
    /// instead of `received`.
    wires: Option<Arc<Mutex<Vec<serde_json::Value>>>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
        if let Some(mut broker) = self.broker.take() {
            let _ = broker.kill();
            let _ = broker.wait();
        }
    }
}

fn host_port(url: &str, default_port: u16) -> String {
    let url = url::Url::parse(url).expect("a service URL");
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(default_port))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The tansu binary for private Kafka brokers: `GEMGATE_TEST_TANSU`, `tansu` on PATH, or the CI cache.
fn tansu() -> Result<std::path::PathBuf, String> {
    if let Ok(path) = std::env::var("GEMGATE_TEST_TANSU") {
        return Ok(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).find(|f| f.is_file()))
        .unwrap_or_default();
    let cache = std::env::var("GEMGATE_CACHE_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/gemgate")
    });
    on_path
        .or_else(|| Some(cache.join("tansu-0.6.0/bin/tansu")).filter(|f| f.is_file()))
        .ok_or_else(|| "no tansu binary (set GEMGATE_TEST_TANSU or run .ci/run once)".to_string())
}

impl Probe {
    /// Reaches the service and starts collecting; `None` (skipped) when it is unreachable outside CI.
    /// With `cuttable`, the sink goes through a proxy that `cut` and `restore` take away and give back.
    pub async fn start(kind: Kind, test: &str, cuttable: bool) -> Option<Probe> {
        Self::start_with(kind, test, cuttable, false).await
    }

    /// A probe that keeps each message as it came off the wire (see `wires`), whatever its format.
    pub async fn start_raw(kind: Kind, test: &str) -> Option<Probe> {
        Self::start_with(kind, test, false, true).await
    }

    async fn start_with(kind: Kind, test: &str, cuttable: bool, raw: bool) -> Option<Probe> {
        let name = unique("gemgate-probe").replace('-', "_");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        let mut probe = Probe {
            kind,
            name,
            dir,
            received: Arc::default(),
            tasks: Vec::new(),
            address: String::new(),
            proxy: None,
            broker: None,
            amqp: None,
            wires: raw.then(Arc::default),
        };
        let service = match kind {
            Kind::Amqp => host_port(&amqp_url(), 5672),
            Kind::Nats => host_port(&nats_url(), 4222),
            Kind::Redis => host_port(&redis_url(), 6379),
            Kind::Kafka if cuttable => {
                let binary = reachable(test, "tansu", tansu())?;
                let listen = free_port();
                let proxy = TcpProxy::start(&format!("127.0.0.1:{listen}")).await.unwrap();
                let broker = std::process::Command::new(binary)
                    .args([
                        "broker",
                        "--listener-url",
                        &format!("tcp://127.0.0.1:{listen}"),
                        "--advertised-listener-url",
                        &format!("tcp://127.0.0.1:{}", proxy.port()),
                        "--storage-engine",
                        "memory://tansu/",
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                probe.broker = Some(reachable(test, "tansu", broker)?);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while tokio::net::TcpStream::connect(("127.0.0.1", listen)).await.is_err() {
                    assert!(tokio::time::Instant::now() < deadline, "the private Kafka broker did not start");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                probe.address = format!("127.0.0.1:{}", proxy.port());
                probe.proxy = Some(proxy);
                String::new()
            }
            Kind::Kafka => kafka_brokers(),
            Kind::Webhook => probe.receive_webhooks().await,
        };
        if probe.address.is_empty() {
            probe.address = if cuttable {
                let proxy = TcpProxy::start(&service).await.unwrap();
                let address = format!("127.0.0.1:{}", proxy.port());
                probe.proxy = Some(proxy);
                address
            } else {
                service
            };
        }
        let collecting = match kind {
            Kind::Amqp => probe.collect_amqp().await,
            Kind::Kafka => probe.collect_kafka().await,
            Kind::Nats => probe.collect_nats().await,
            Kind::Redis => probe.collect_redis().await,
            Kind::Webhook => Ok(()),
        };
        reachable(test, kind.service(), collecting)?;
        Some(probe)
    }

    /// The `[[sinks]]` entry named `sink` that delivers to this probe.
    pub fn sink_toml(&self, sink: &str) -> String {
        let (address, name) = (&self.address, &self.name);
        let kind = match self.kind {
            Kind::Amqp => {
                let mut url = url::Url::parse(&amqp_url()).unwrap();
                let (host, port) = address.split_once(':').unwrap();
                url.set_host(Some(host)).unwrap();
                url.set_port(Some(port.parse().unwrap())).unwrap();
                format!("kind = \"amqp\"\nurl = \"{url}\"\nexchange = \"{name}_x\"\nqueue = \"{name}\"")
            }
            Kind::Kafka => format!("kind = \"kafka\"\nbrokers = [\"{address}\"]\ntopic = \"{name}\""),
            Kind::Nats => format!(
                "kind = \"nats\"\nurl = \"nats://{address}\"\nsubject = \"{name}\"\nstream = \"{name}\""
            ),
            Kind::Redis => format!("kind = \"redis\"\nurl = \"redis://{address}\"\nstream = \"{name}\""),
            Kind::Webhook => format!(
                "kind = \"webhook\"\nurl = \"http://{address}/hook\"\nsecret_file = \"{}\"\nstrict_order = true",
                self.dir.path().join("secret").display()
            ),
        };
        format!("[[sinks]]\nname = \"{sink}\"\n{kind}\n")
    }

    /// The sink of `sink_toml`, built as `gemgate dispatch` builds it.
    pub fn sink(&self, sink: &str) -> Arc<dyn Sink> {
        let settings = gemgate_config::load_str(
            &self.sink_toml(sink),
            std::path::Path::new("probe.toml"),
            self.dir.path(),
            &BTreeMap::new(),
        )
        .unwrap();
        gemgate_sinks::build(&settings.sinks[0]).unwrap()
    }

    /// The route a message for `event` must arrive under, where the transport has one.
    pub fn expected_route(&self, event: &gemgate_domain::ChainEvent) -> Option<String> {
        match self.kind {
            Kind::Amqp => Some(format!("31337.{}.{}", event.contract, event.event)),
            Kind::Nats => Some(format!("{}.31337.{}.{}", self.name, event.contract, event.event)),
            Kind::Kafka => Some(event.ordering_key()),
            Kind::Redis | Kind::Webhook => None,
        }
    }

    pub async fn cut(&self) {
        self.proxy.as_ref().expect("a cuttable probe").cut().await;
    }

    pub fn restore(&self) {
        self.proxy.as_ref().expect("a cuttable probe").restore();
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What a `start_raw` probe took off the wire so far.
    pub fn wires(&self) -> Vec<serde_json::Value> {
        self.wires.as_ref().expect("a raw probe").lock().unwrap().clone()
    }

    fn push_wire(&self) -> Option<impl Fn(serde_json::Value) + Send + Sync + 'static> {
        let wires = self.wires.clone()?;
        Some(move |wire| wires.lock().unwrap().push(wire))
    }

    /// Waits until `done` holds for what was received, or panics after `timeout`.
    pub async fn wait_for(
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
                "{:?}: timed out waiting for {what}: {} received",
                self.kind,
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes what the probe created on shared services.
    pub async fn cleanup(self) {
        match self.kind {
            Kind::Amqp => {
                if let Some((_, channel)) = &self.amqp {
                    let _ = channel.queue_delete(&self.name, QueueDeleteOptions::default()).await;
                }
            }
            Kind::Nats => {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(&self.name).await;
                }
            }
            Kind::Redis => {
                if let Ok(mut c) = redis_connection().await {
                    let _: Result<(), _> = redis::cmd("DEL").arg(&self.name).query_async(&mut c).await;
                }
            }
            Kind::Kafka | Kind::Webhook => {}
        }
    }

    fn push(&self) -> impl Fn(Received) + Send + Sync + 'static {
        let received = self.received.clone();
        move |r| received.lock().unwrap().push(r)
    }

    /// A queue declared as the sink declares it (durable), consumed from now on.
    async fn collect_amqp(&mut self) -> Result<(), String> {
        let properties = lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection =
            lapin::Connection::connect(&amqp_url(), properties).await.map_err(|e| e.to_string())?;
        let channel = connection.create_channel().await.map_err(|e| e.to_string())?;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(&self.name, durable, FieldTable::default()).await.map_err(|e| e.to_string())?;
        let mut consumer = channel
            .basic_consume(
                &self.name,
                "probe",
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let (push, wire) = (self.push(), self.push_wire());
        self.tasks.push(tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                if let Some(wire) = &wire {
                    // The AMQP binding's `cloudEvents_` application properties, read by the SDK's HTTP
                    // binding as the `ce-` headers they correspond to.
                    let mut headers = serde_json::Map::new();
                    for (name, value) in delivery.properties.headers().iter().flat_map(|t| t.inner()) {
                        let lapin::types::AMQPValue::LongString(value) = value else { continue };
                        let name = name.as_str().replace("cloudEvents_", "ce-");
                        headers.insert(name, String::from_utf8_lossy(value.as_bytes()).into());
                    }
                    let content_type = delivery.properties.content_type().as_ref().map(|c| c.to_string());
                    headers.insert("content-type".into(), content_type.unwrap_or_default().into());
                    let body = String::from_utf8_lossy(&delivery.data);
                    wire(serde_json::json!({"binding": "http", "headers": headers, "body": body}));
                    continue;
                }
                let id = delivery.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default();
                push(Received::from_body(&id, &delivery.data, delivery.routing_key.to_string()));
            }
        }));
        self.amqp = Some((connection, channel));
        Ok(())
    }

    /// The topic, created with a few partitions, read from the beginning of each.
    async fn collect_kafka(&mut self) -> Result<(), String> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.address);
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            config.create().map_err(|e| e.to_string())?;
        let topic = NewTopic::new(&self.name, KAFKA_PARTITIONS, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let created = tokio::time::timeout(Duration::from_secs(15), admin.create_topics([&topic], &options))
            .await
            .map_err(|_| format!("creating topic {} timed out", self.name))?
            .map_err(|e| e.to_string())?;
        for result in created {
            result.map_err(|(topic, code)| format!("creating topic {topic}: {code}"))?;
        }
        let consumer: rdkafka::consumer::StreamConsumer = config
            .set("group.id", &self.name)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| e.to_string())?;
        let mut partitions = rdkafka::TopicPartitionList::new();
        for p in 0..KAFKA_PARTITIONS {
            partitions
                .add_partition_offset(&self.name, p, rdkafka::Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        consumer.assign(&partitions).map_err(|e| e.to_string())?;
        let (push, wire) = (self.push(), self.push_wire());
        self.tasks.push(tokio::spawn(async move {
            loop {
                let Ok(message) = consumer.recv().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if let Some(wire) = &wire {
                    let headers: serde_json::Map<String, serde_json::Value> = message
                        .headers()
                        .iter()
                        .flat_map(|h| h.iter())
                        .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into()))
                        .collect();
                    let key = String::from_utf8_lossy(message.key().unwrap_or_default());
                    let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                    let timestamp = message.timestamp().to_millis().map(|ms| ms.to_string());
                    wire(serde_json::json!({
                        "binding": "kafka", "headers": headers, "key": key, "value": value, "timestamp": timestamp
                    }));
                    continue;
                }
                let header = |name: &str| {
                    message.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == name)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).to_string())
                    })
                };
                let id = header("gemgate-id").unwrap_or_default();
                let key = message.key().map(|k| String::from_utf8_lossy(k).to_string()).unwrap_or_default();
                let received = Received::from_body(&id, message.payload().unwrap_or_default(), key);
                assert_eq!(header("gemgate-status").as_deref(), Some(received.status.as_str()));
                push(received);
            }
        }));
        Ok(())
    }

    /// The stream, created as the sink creates it, read by a pull consumer.
    async fn collect_nats(&mut self) -> Result<(), String> {
        use async_nats::jetstream;
        let client = async_nats::connect(nats_url()).await.map_err(|e| e.to_string())?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.name.clone(),
                subjects: vec![format!("{}.>", self.name)],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let (push, wire) = (self.push(), self.push_wire());
        self.tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                if let Some(wire) = &wire {
                    // The NATS binding's `ce-` headers follow the HTTP binding's rules.
                    let headers: serde_json::Map<String, serde_json::Value> = message
                        .headers
                        .iter()
                        .flat_map(|h| h.iter())
                        .filter_map(|(name, values)| {
                            Some((name.to_string().to_lowercase(), values.first()?.to_string().into()))
                        })
                        .collect();
                    let body = String::from_utf8_lossy(&message.payload);
                    wire(serde_json::json!({"binding": "http", "headers": headers, "body": body}));
                    continue;
                }
                let header = |name: &str| {
                    message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                let id = header("Gemgate-Id");
                let received = Received::from_body(&id, &message.payload, message.subject.to_string());
                assert_eq!(header("Gemgate-Status"), received.status);
                assert!(
                    header("Nats-Msg-Id").starts_with(&format!("{id}:")),
                    "one Nats-Msg-Id per outbox row"
                );
                push(received);
            }
        }));
        Ok(())
    }

    /// The stream read with blocking XREADs from its start.
    async fn collect_redis(&mut self) -> Result<(), String> {
        let mut connection = redis_connection().await.map_err(|e| e.to_string())?;
        let (stream, push, wire) = (self.name.clone(), self.push(), self.push_wire());
        self.tasks.push(tokio::spawn(async move {
            let mut last = "0".to_string();
            loop {
                type Entries = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;
                let read: Result<Option<Entries>, _> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1000)
                    .arg("BLOCK")
                    .arg(200)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(&last)
                    .query_async(&mut connection)
                    .await;
                let Ok(Some(streams)) = read else { continue };
                for (_, entries) in streams {
                    for (entry, fields) in entries {
                        let field =
                            |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
                        if let Some(wire) = &wire {
                            // No binding: the body is a structured CloudEvent in JSON.
                            let headers = serde_json::json!({"content-type": "application/cloudevents+json"});
                            wire(serde_json::json!({"binding": "http", "headers": headers, "body": field("body")}));
                            last = entry;
                            continue;
                        }
                        let received =
                            Received::from_body(&field("id"), field("body").as_bytes(), String::new());
                        assert_eq!(field("status"), received.status);
                        push(received);
                        last = entry;
                    }
                }
            }
        }));
        Ok(())
    }

    /// An HTTP receiver that verifies every request with the documented scheme; its address.
    async fn receive_webhooks(&mut self) -> String {
        use axum::http::{HeaderMap, StatusCode};
        let push = Arc::new(self.push());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let push = push.clone();
                async move {
                    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                    let Ok(webhook_id) = verify_webhook(&[SECRET], header, &body) else {
                        return StatusCode::UNAUTHORIZED;
                    };
                    // Standard Webhooks ids are one per outbox row: `<event id>:<outbox position>`.
                    let Some((id, position)) = webhook_id.rsplit_once(':') else {
                        return StatusCode::BAD_REQUEST;
                    };
                    assert!(position.parse::<u64>().is_ok(), "webhook-id {webhook_id}");
                    push(Received::from_body(id, &body, String::new()));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        self.tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        address
    }

    /// Leaves what the sink delivers to `gemgate consume`: the probe stops reading a RabbitMQ queue (it
    /// would compete for its messages), and webhooks go to a fresh port where `consume` will listen. Other
    /// kinds keep an independent reader.
    pub async fn hand_over(&mut self) {
        match self.kind {
            Kind::Amqp => {
                let (_, channel) = self.amqp.as_ref().expect("connected");
                channel.basic_cancel("probe", lapin::options::BasicCancelOptions::default()).await.unwrap();
            }
            Kind::Webhook => self.address = format!("127.0.0.1:{}", free_port()),
            Kind::Kafka | Kind::Nats | Kind::Redis => {}
        }
    }

    /// The arguments that make `gemgate consume` read what this probe's sink delivers.
    pub fn consume_args(&self) -> Vec<String> {
        let s = |v: &str| v.to_string();
        match self.kind {
            Kind::Amqp => vec![s("--amqp"), amqp_url(), s("--queue"), self.name.clone()],
            Kind::Kafka => vec![s("--kafka"), self.address.clone(), s("--topic"), self.name.clone()],
            Kind::Nats => vec![s("--nats"), nats_url(), s("--stream"), self.name.clone()],
            Kind::Redis => vec![s("--redis"), redis_url(), s("--stream"), self.name.clone()],
            Kind::Webhook => vec![
                s("--webhook-listen"),
                self.address.clone(),
                s("--webhook-secret-file"),
                self.dir.path().join("secret").display().to_string(),
            ],
        }
    }
}

pub async fn redis_connection() -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(redis_url().as_str())?.get_multiplexed_async_connection().await
}
