//! Where `gemgate consume` reads from: one `Source` per sink kind. A source hands out message bodies with
//! a token and settles a token only after the message's transaction committed, so a consumer that dies
//! in between gets the message again (and drops it as a duplicate by id).

use std::collections::VecDeque;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{mpsc, oneshot};

#[async_trait]
pub trait Source: Send {
    type Token: Send;
    /// The next message body, or `None` when the source has ended.
    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>>;
    /// Marks a message as handled, so it is not delivered again.
    async fn settle(&mut self, token: Self::Token) -> anyhow::Result<()>;
}

/// A RabbitMQ queue (declare it with the AMQP sink's `queue` key), acknowledged message by message.
pub struct Amqp {
    _connection: lapin::Connection,
    deliveries: lapin::Consumer,
}

impl Amqp {
    pub async fn open(url: &str, queue: &str, name: &str) -> anyhow::Result<Self> {
        let properties = lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection =
            lapin::Connection::connect(url, properties).await.context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(500, BasicQosOptions::default()).await?;
        let deliveries = channel
            .basic_consume(queue, name, BasicConsumeOptions::default(), FieldTable::default())
            .await
            .with_context(|| format!("consuming queue {queue}"))?;
        Ok(Self { _connection: connection, deliveries })
    }
}

#[async_trait]
impl Source for Amqp {
    type Token = lapin::acker::Acker;

    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>> {
        match self.deliveries.next().await {
            Some(delivery) => {
                let delivery = delivery?;
                Ok(Some((delivery.data, delivery.acker)))
            }
            None => Ok(None),
        }
    }

    async fn settle(&mut self, acker: Self::Token) -> anyhow::Result<()> {
        acker.ack(BasicAckOptions::default()).await.map(|_| ()).context("acknowledging")
    }
}

/// A Kafka topic read in the consumer group `name` from the earliest offset; a message's offset is stored
/// for commit only after it was handled.
pub struct Kafka {
    consumer: rdkafka::consumer::StreamConsumer,
}

impl Kafka {
    pub fn open(brokers: &str, topic: &str, name: &str) -> anyhow::Result<Self> {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", name)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .create()
            .context("creating the Kafka consumer")?;
        consumer.subscribe(&[topic]).with_context(|| format!("subscribing to topic {topic}"))?;
        Ok(Self { consumer })
    }
}

#[async_trait]
impl Source for Kafka {
    type Token = (String, i32, i64);

    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>> {
        use rdkafka::Message;
        let message = self.consumer.recv().await.context("reading from Kafka")?;
        let body = message.payload().unwrap_or_default().to_vec();
        Ok(Some((body, (message.topic().to_string(), message.partition(), message.offset()))))
    }

    async fn settle(&mut self, (topic, partition, offset): Self::Token) -> anyhow::Result<()> {
        use rdkafka::consumer::Consumer;
        self.consumer.store_offset(&topic, partition, offset).context("storing the offset")
    }
}

/// A JetStream stream read by the durable pull consumer `name`, acknowledged message by message.
pub struct Nats {
    messages: async_nats::jetstream::consumer::pull::Stream,
}

impl Nats {
    pub async fn open(url: &str, stream: &str, name: &str) -> anyhow::Result<Self> {
        use async_nats::jetstream::consumer::{AckPolicy, pull};
        let client = async_nats::connect(url).await.context("connecting to NATS")?;
        let stream = async_nats::jetstream::new(client)
            .get_stream(stream)
            .await
            .with_context(|| format!("opening stream {stream}"))?;
        let config = pull::Config {
            durable_name: Some(name.to_string()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        };
        let consumer = stream.get_or_create_consumer(name, config).await.context("creating the consumer")?;
        Ok(Self { messages: consumer.messages().await.context("reading the stream")? })
    }
}

#[async_trait]
impl Source for Nats {
    type Token = async_nats::jetstream::Message;

    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>> {
        match self.messages.next().await {
            Some(message) => {
                let message = message.map_err(|e| anyhow::anyhow!("reading the stream: {e}"))?;
                Ok(Some((message.payload.to_vec(), message)))
            }
            None => Ok(None),
        }
    }

    async fn settle(&mut self, message: Self::Token) -> anyhow::Result<()> {
        message.ack().await.map_err(|e| anyhow::anyhow!("acknowledging: {e}"))
    }
}

/// A Redis stream read in the consumer group `name` (created at the stream's start if missing): first
/// what this consumer read before but never acknowledged, then new entries; XACK after handling.
pub struct Redis {
    connection: redis::aio::MultiplexedConnection,
    stream: String,
    group: String,
    /// `0` while re-reading this consumer's pending entries, `>` after.
    from: &'static str,
    buffered: VecDeque<(String, Vec<u8>)>,
}

type StreamEntries = Vec<(String, Vec<(String, Vec<(String, Vec<u8>)>)>)>;

impl Redis {
    pub async fn open(url: &str, stream: &str, name: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("bad Redis URL")?;
        let mut connection =
            client.get_multiplexed_async_connection().await.context("connecting to Redis")?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(name)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e).context("creating the consumer group");
        }
        Ok(Self {
            connection,
            stream: stream.to_string(),
            group: name.to_string(),
            from: "0",
            buffered: VecDeque::new(),
        })
    }
}

#[async_trait]
impl Source for Redis {
    type Token = String;

    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>> {
        while self.buffered.is_empty() {
            let read: Option<StreamEntries> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.group)
                .arg("COUNT")
                .arg(500)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(self.from)
                .query_async(&mut self.connection)
                .await
                .context("reading the stream")?;
            let entries: Vec<_> = read.into_iter().flatten().flat_map(|(_, entries)| entries).collect();
            if entries.is_empty() && self.from == "0" {
                self.from = ">"; // the pending entries are done
            }
            for (id, fields) in entries {
                let body = fields.into_iter().find(|(k, _)| k == "body").map(|(_, v)| v).unwrap_or_default();
                self.buffered.push_back((id, body));
            }
        }
        Ok(self.buffered.pop_front().map(|(id, body)| (body, id)))
    }

    async fn settle(&mut self, id: Self::Token) -> anyhow::Result<()> {
        redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&id)
            .query_async::<()>(&mut self.connection)
            .await
            .context("acknowledging")
    }
}

/// Signed webhooks received on an address: every request is verified with either documented scheme
/// (Standard Webhooks with a `whsec_` secret, or `Gemgate-Signature`; 5 minutes of tolerance) and answered 204 only after it was handled, so the sender
/// retries anything not handled. A bad signature gets 401.
pub struct Webhooks {
    requests: mpsc::Receiver<(Vec<u8>, oneshot::Sender<()>)>,
}

impl Webhooks {
    pub async fn open(listen: SocketAddr, secrets: Vec<String>) -> anyhow::Result<Self> {
        use axum::http::{HeaderMap, StatusCode};
        use gemgate_sinks::signature::verify_webhook;
        if secrets.is_empty() {
            bail!("webhooks need a secret");
        }
        let (tx, requests) = mpsc::channel::<(Vec<u8>, oneshot::Sender<()>)>(64);
        let receive = move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, secrets) = (tx.clone(), secrets.clone());
            async move {
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                if let Err(error) = verify_webhook(&secrets, header, &body) {
                    tracing::warn!(%error, "webhook refused");
                    return StatusCode::UNAUTHORIZED;
                }
                let (done, handled) = oneshot::channel();
                if tx.send((body.to_vec(), done)).await.is_err() {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                match handled.await {
                    Ok(()) => StatusCode::NO_CONTENT,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        };
        let app = axum::Router::new().fallback(axum::routing::post(receive));
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the webhook receiver stopped");
            }
        });
        Ok(Self { requests })
    }
}

#[async_trait]
impl Source for Webhooks {
    type Token = oneshot::Sender<()>;

    async fn next(&mut self) -> anyhow::Result<Option<(Vec<u8>, Self::Token)>> {
        Ok(self.requests.recv().await)
    }

    async fn settle(&mut self, done: Self::Token) -> anyhow::Result<()> {
        let _ = done.send(()); // the sender may have given up; it then sends again
        Ok(())
    }
}
