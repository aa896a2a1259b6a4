//! `gemgate bench deliver`: messages/s from the outbox through a real dispatcher into RabbitMQ (publisher
//! confirms, persistent messages, a durable queue bound to the exchange), NATS JetStream (publish acks),
//! Kafka (idempotent producer, delivery reports) and Redis Streams (pipelined XADD), each beside the
//! broker's raw publish rate measured in the same run with the same client library and the same settings;
//! then block-to-broker latency (block mined on anvil to the message in a RabbitMQ
//! consumer's hands, through the indexer and the dispatcher), p50/p95.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use gemgate_domain::ports::{Batch, ChainSource, OutboxEntry, OutboxStore, Store};
use gemgate_domain::{BlockRef, ChainEvent, ENVELOPE_SCHEMA, EventId, EventStatus, FinalityLevel};
use gemgate_indexer::{Indexer, IndexerMetrics, IndexerSettings};
use gemgate_outbox::{DispatchMetrics, DispatchSettings, Dispatcher};
use gemgate_projections::ProjectionSet;
use gemgate_sinks::amqp::AmqpSink;
use gemgate_store::SqlStore;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use super::{machine, rate, sqlite_url};

#[derive(Debug, Clone, clap::Args)]
pub struct DeliverBench {
    /// Messages in the outbox.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// RabbitMQ to publish to (exchanges and queues named gemgate-bench-* are created and deleted); "none"
    /// skips it and the latency run.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// NATS with JetStream to publish to (streams named GEMGATE-BENCH-* are created and deleted); "none" skips.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Kafka brokers to publish to (topics named gemgate-bench-* are created); "none" skips.
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka: String,
    /// Redis to publish to (streams named gemgate-bench-* are created and deleted); "none" skips.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Blocks measured for block-to-broker latency.
    #[arg(long, default_value_t = 30)]
    latency_blocks: u32,
}

/// Messages per publish batch, the same for the raw loop and the dispatcher (its page).
const BATCH: usize = 2_000;
/// Channels used at once by the multi-channel raw loop (the AMQP sink's own number).
const CHANNELS: usize = gemgate_sinks::amqp::CHANNELS;

/// Publishes every body with confirms, BATCH at a time, each batch split over `channels` channels.
async fn raw_publish(
    connection: &lapin::Connection,
    exchange: &str,
    bodies: &[(String, Vec<u8>)],
    channels: usize,
) -> anyhow::Result<()> {
    let mut open = Vec::new();
    for _ in 0..channels {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        open.push(channel);
    }
    for chunk in bodies.chunks(BATCH) {
        let per_channel = chunk.len().div_ceil(channels);
        let sends = chunk.chunks(per_channel).zip(&open).map(|(part, channel)| async move {
            let mut confirms = Vec::with_capacity(part.len());
            for (id, body) in part {
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(id.as_str().into());
                confirms.push(
                    channel
                        .basic_publish(
                            exchange,
                            "31337.bench.Spam",
                            BasicPublishOptions::default(),
                            body,
                            properties,
                        )
                        .await?,
                );
            }
            for confirm in confirms {
                confirm.await?;
            }
            Ok::<(), lapin::Error>(())
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
    }
    for channel in open {
        let _ = channel.close(0, "done").await;
    }
    Ok(())
}

pub async fn run(bench: DeliverBench) -> anyhow::Result<()> {
    println!(
        "gemgate bench deliver: {} messages into RabbitMQ, NATS JetStream, Kafka and Redis Streams; {}",
        bench.messages,
        machine()
    );
    let dir = tempfile::tempdir()?;
    let store =
        SqlStore::connect(&sqlite_url(dir.path(), "deliver"), 4, ProjectionSet::gemforce_for(Vec::new()))
            .await?;
    store.migrate().await?;
    fill_outbox(&store, bench.messages).await?;
    let started = Instant::now();
    let bodies = outbox_bodies(&store, bench.messages).await?;
    println!(
        "  outbox read + envelopes         {:>10.0} msg/s ({:.2} s: rows read, envelopes built and serialized)",
        rate(bench.messages, started.elapsed()),
        started.elapsed().as_secs_f64()
    );
    // 1-2. RabbitMQ: raw publishing, then the dispatcher.
    if bench.amqp != "none" {
        rabbitmq(&bench, &store, &bodies).await?;
    }

    // 3. NATS JetStream: raw publishes with acks (async-nats, the sink's client), then the dispatcher.
    if bench.nats != "none" {
        nats(&bench, &store, &bodies).await?;
    }

    // 4-5. Kafka and Redis Streams, the same way.
    if bench.kafka != "none" {
        kafka(&bench, &store, &bodies).await?;
    }
    if bench.redis != "none" {
        redis_streams(&bench, &store, &bodies).await?;
    }

    // 6. Block-to-broker latency (through RabbitMQ).
    if bench.amqp == "none" {
        return Ok(());
    }
    let latencies = latency(&bench, dir.path()).await?;
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  block -> broker latency         p50 {:.1} ms, p95 {:.1} ms over {} blocks (block mined to message consumed)",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3,
        latencies.len()
    );
    Ok(())
}

async fn rabbitmq(
    bench: &DeliverBench,
    store: &SqlStore,
    bodies: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let connection = connect(&bench.amqp).await?;
    let tag = std::process::id();

    // 1. Raw: the same client, confirms, persistent messages to a durable bound queue, batches of BATCH,
    // on one channel and on several at once.
    let (raw_exchange, raw_queue) = (format!("gemgate-bench-raw-{tag}"), format!("gemgate-bench-raw-{tag}"));
    let channel = connection.create_channel().await?;
    declare(&channel, &raw_exchange, &raw_queue).await?;
    let mut raw_rate: f64 = 0.0;
    for channels in [1, CHANNELS] {
        let started = Instant::now();
        raw_publish(&connection, &raw_exchange, bodies, channels).await?;
        let rate = rate(bodies.len() as u64, started.elapsed());
        raw_rate = raw_rate.max(rate);
        println!(
            "  raw publish, {channels} channel(s)      {rate:>10.0} msg/s ({:.2} s, lapin, confirms, persistent, batches of {BATCH})",
            started.elapsed().as_secs_f64()
        );
        channel.queue_purge(&raw_queue, lapin::options::QueuePurgeOptions::default()).await?;
    }
    channel.queue_delete(&raw_queue, QueueDeleteOptions::default()).await?;

    // 2. The dispatcher: outbox rows read, envelopes built, published with confirms, position stored.
    let (exchange, queue) = (format!("gemgate-bench-x-{tag}"), format!("gemgate-bench-q-{tag}"));
    let sink = Arc::new(AmqpSink::new("bench", bench.amqp.parse()?, &exchange, Some(queue.clone())));
    dispatch(store, sink, bench.messages, "RabbitMQ", raw_rate).await?;
    channel.queue_delete(&queue, QueueDeleteOptions::default()).await?;

    let _ = connection.close(0, "bench done").await;
    Ok(())
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<lapin::Connection> {
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    lapin::Connection::connect(url, properties).await.context("connecting to RabbitMQ")
}

pub(crate) async fn declare(channel: &lapin::Channel, exchange: &str, queue: &str) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange, ExchangeKind::Topic, durable, FieldTable::default()).await?;
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue, durable, FieldTable::default()).await?;
    channel.queue_bind(queue, exchange, "#", QueueBindOptions::default(), FieldTable::default()).await?;
    Ok(())
}

/// `count` synthetic events committed in batches, as an indexer would: one outbox row each, 100 keys.
pub(crate) async fn fill_outbox(store: &SqlStore, count: u64) -> anyhow::Result<()> {
    let mut previous: Option<BlockRef> = None;
    let per_block = 20;
    let blocks = count.div_ceil(per_block);
    for first in (1..=blocks).step_by(250) {
        let last = (first + 249).min(blocks);
        let events: Vec<ChainEvent> = (first..=last)
            .flat_map(|block| (0..per_block).map(move |log| (block, log)))
            .take_while(|(block, log)| (block - 1) * per_block + log < count)
            .map(|(block, log)| synthetic_event(block, log))
            .collect();
        let cursor = BlockRef {
            number: last,
            hash: alloy_primitives::B256::from(alloy_primitives::U256::from(last)),
            parent_hash: alloy_primitives::B256::from(alloy_primitives::U256::from(last - 1)),
        };
        let batch = Batch {
            chain_id: 31337,
            blocks: vec![],
            events,
            outbox: vec![],
            previous,
            cursor,
            finalized: last,
            fence: None,
        };
        store.commit_batch(&batch).await?;
        previous = Some(cursor);
    }
    Ok(())
}

fn synthetic_event(block: u64, log: u64) -> ChainEvent {
    let block_hash = alloy_primitives::B256::from(alloy_primitives::U256::from(block));
    ChainEvent {
        id: EventId::derive(31337, block_hash, log),
        chain_id: 31337,
        block_number: block,
        block_hash,
        tx_hash: alloy_primitives::B256::from(alloy_primitives::U256::from(block * 1_000 + log)),
        tx_index: 0,
        log_index: log,
        address: alloy_primitives::Address::repeat_byte(0x5f),
        contract: "bench".into(),
        event: "Spam".into(),
        signature: alloy_primitives::B256::repeat_byte(1),
        args: serde_json::json!({"tokenId": ((block * 20 + log) % 100).to_string(), "value": (block * 1_000 + log).to_string()}),
        topics: vec![alloy_primitives::B256::repeat_byte(1)],
        data: alloy_primitives::Bytes::from(vec![0u8; 64]),
        status: EventStatus::Canonical,
        finality: FinalityLevel::Latest,
        tx_from: None,
        schema: ENVELOPE_SCHEMA,
    }
}

/// The envelopes as the dispatcher will send them, for the raw loop to send the same bytes.
async fn outbox_bodies(store: &SqlStore, count: u64) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut bodies = Vec::with_capacity(count as usize);
    let mut after = 0;
    while (bodies.len() as u64) < count {
        let entries = store.outbox_after(after, 5_000).await?;
        anyhow::ensure!(!entries.is_empty(), "the outbox holds {} rows, expected {count}", bodies.len());
        for entry in entries {
            after = entry.seq();
            if let OutboxEntry::Message(m) = entry {
                bodies.push((m.id, m.payload.as_bytes().to_vec()));
            }
        }
    }
    Ok(bodies)
}

/// Indexer (websocket heads) and dispatcher in one process, as `gemgate run` wires them; a consumer on the
/// sink's queue; the time from a block's receipt to its message arriving.
async fn latency(bench: &DeliverBench, dir: &std::path::Path) -> anyhow::Result<Vec<Duration>> {
    let binary = gemgate_testkit::find_anvil().await?;
    let options = gemgate_testkit::AnvilOptions { accounts: 2, ..gemgate_testkit::AnvilOptions::default() };
    let anvil = gemgate_testkit::Anvil::start_binary(&binary, &options, 0).await?;
    let chain = gemgate_testkit::build_log_chain(&anvil, 1, 1).await?;
    let store =
        SqlStore::connect(&sqlite_url(dir, "latency"), 4, ProjectionSet::gemforce_for(Vec::new())).await?;
    store.migrate().await?;
    let abi = gemgate_config::parse_abi(gemgate_testkit::artifacts::Artifact::named("LogSpammer")?.json)
        .map_err(|e| anyhow::anyhow!(e))?;
    let decoder = gemgate_projections::Decoder::new(vec![gemgate_projections::ContractAbi::new(
        "spammer",
        anvil.chain_id(),
        chain.address,
        &[abi],
    )]);
    let mut settings = IndexerSettings::new(anvil.chain_id(), anvil.block_number().await? + 1);
    settings.poll_interval = Duration::from_secs(1);
    let source: Arc<dyn ChainSource> = Arc::new(gemgate_chain::EvmChain::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse()?, anvil.endpoint())],
        gemgate_chain::RetryPolicy::default(),
    ));
    let store_port: Arc<dyn Store> = Arc::new(store.clone());
    let indexer = Indexer::new(source, store_port, Arc::new(decoder), settings, IndexerMetrics::default())
        .with_head_notifications(gemgate_chain::subscribe_heads(
            anvil.chain_id(),
            vec![gemgate_chain::WsEndpoint { url: anvil.ws_endpoint().parse()?, label: anvil.ws_endpoint() }],
            None,
        ));

    let tag = std::process::id();
    let (exchange, queue) = (format!("gemgate-bench-lx-{tag}"), format!("gemgate-bench-lq-{tag}"));
    let connection = connect(&bench.amqp).await?;
    let channel = connection.create_channel().await?;
    declare(&channel, &exchange, &queue).await?;
    let sink = Arc::new(AmqpSink::new("latency", bench.amqp.parse()?, &exchange, Some(queue.clone())));
    let dispatch =
        DispatchSettings { poll_interval: Duration::from_millis(5), ..DispatchSettings::new("latency") };
    let dispatcher = Dispatcher::new(Arc::new(store.clone()), sink, dispatch, DispatchMetrics::default());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let indexing = tokio::spawn(indexer.run(stopped(stop_rx.clone())));
    let dispatching = tokio::spawn(dispatcher.run(stopped(stop_rx.clone())));
    let mut consumer = channel
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await?;

    let spammer = gemgate_testkit::bindings::LogSpammer::new(chain.address, anvil.provider());
    let owner = anvil.accounts()[0];
    let mut latencies = Vec::new();
    for i in 0..bench.latency_blocks {
        let pending = spammer
            .spam(alloy_primitives::U256::from(1), alloy_primitives::U256::from(2_000_000 + i))
            .from(owner)
            .send()
            .await?;
        gemgate_testkit::confirm(&anvil.provider(), pending, "latency probe").await?;
        let mined = Instant::now();
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .context("no message within 10 s")?
            .context("the consumer stopped")??;
        drop(delivery);
        latencies.push(mined.elapsed());
    }
    let _ = stop_tx.send(true);
    let _ = indexing.await;
    let _ = dispatching.await;
    channel.queue_delete(&queue, QueueDeleteOptions::default()).await?;
    let _ = connection.close(0, "bench done").await;
    latencies.sort();
    Ok(latencies)
}

async fn nats(bench: &DeliverBench, store: &SqlStore, bodies: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    use async_nats::jetstream;
    let client = async_nats::connect(bench.nats.as_str()).await.context("connecting to NATS")?;
    let js = jetstream::new(client);
    let tag = std::process::id();
    let (raw_stream, raw_subject) = (format!("GEMGATE-BENCH-RAW-{tag}"), format!("gemgate-bench-raw-{tag}"));
    js.get_or_create_stream(jetstream::stream::Config {
        name: raw_stream.clone(),
        subjects: vec![format!("{raw_subject}.>")],
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating the stream: {e}"))?;
    let started = Instant::now();
    for chunk in bodies.chunks(BATCH) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (id, body) in chunk {
            // The sink's three headers (its Nats-Msg-Id is the id and the outbox position).
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{id}:1").as_str());
            headers.insert("Gemgate-Id", id.as_str());
            headers.insert("Gemgate-Status", "canonical");
            acks.push(
                js.publish_with_headers(
                    format!("{raw_subject}.31337.bench.Spam"),
                    headers,
                    body.clone().into(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("publishing: {e}"))?,
            );
        }
        for ack in acks {
            ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
        }
    }
    let raw_rate = rate(bodies.len() as u64, started.elapsed());
    println!(
        "  raw publish to JetStream        {raw_rate:>10.0} msg/s ({:.2} s, async-nats, acks, batches of {BATCH})",
        started.elapsed().as_secs_f64()
    );
    let _ = js.delete_stream(&raw_stream).await;

    let (stream, subject) = (format!("GEMGATE-BENCH-{tag}"), format!("gemgate-bench-{tag}"));
    let sink =
        Arc::new(gemgate_sinks::nats::NatsSink::new("bench-nats", bench.nats.parse()?, &subject, &stream));
    dispatch(store, sink, bodies.len() as u64, "NATS JetStream", raw_rate).await?;
    let _ = js.delete_stream(&stream).await;
    Ok(())
}

/// A dispatcher delivering the whole outbox to `sink` from position 0: its rate beside `raw_rate`.
async fn dispatch(
    store: &SqlStore,
    sink: Arc<dyn gemgate_domain::ports::Sink>,
    messages: u64,
    broker: &str,
    raw_rate: f64,
) -> anyhow::Result<()> {
    let settings = DispatchSettings { page: BATCH as u32, ..DispatchSettings::new(sink.name()) };
    let mut dispatcher = Dispatcher::new(Arc::new(store.clone()), sink, settings, DispatchMetrics::default());
    let started = Instant::now();
    while dispatcher.position() < messages {
        let outcome = dispatcher.round().await?;
        anyhow::ensure!(
            outcome.read > 0 || outcome.delivered > 0,
            "the dispatcher to {broker} stalled at {}",
            dispatcher.position()
        );
    }
    let elapsed = started.elapsed();
    let dispatch_rate = rate(messages, elapsed);
    println!(
        "  {:<31} {dispatch_rate:>10.0} msg/s ({:.2} s, {:.0}% of raw)",
        format!("dispatcher -> {broker}"),
        elapsed.as_secs_f64(),
        100.0 * dispatch_rate / raw_rate
    );
    Ok(())
}

/// Kafka: raw sends of the same bodies and keys with the sink's producer settings (idempotence, delivery
/// reports awaited per batch), then the dispatcher.
async fn kafka(bench: &DeliverBench, store: &SqlStore, bodies: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let tag = std::process::id();
    let (raw_topic, topic) = (format!("gemgate-bench-raw-{tag}"), format!("gemgate-bench-{tag}"));
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &bench.kafka);
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = config.create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topics = [&raw_topic, &topic].map(|t| NewTopic::new(t, 3, TopicReplication::Fixed(1)));
    for result in tokio::time::timeout(Duration::from_secs(15), admin.create_topics(&topics, &options))
        .await
        .context("creating the Kafka topics timed out")??
    {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
    }
    let producer: FutureProducer = config
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "2")
        .create()?;
    let started = Instant::now();
    for (n, chunk) in bodies.chunks(BATCH).enumerate() {
        let mut reports = Vec::with_capacity(chunk.len());
        for (i, (id, body)) in chunk.iter().enumerate() {
            let key = format!("bench:{}", (n * BATCH + i) % 100);
            // The sink's three headers.
            use rdkafka::message::Header;
            let headers = rdkafka::message::OwnedHeaders::new_with_capacity(3)
                .insert(Header { key: "gemgate-id", value: Some(id.as_str()) })
                .insert(Header { key: "gemgate-kind", value: Some("event") })
                .insert(Header { key: "gemgate-status", value: Some("canonical") });
            let record = FutureRecord::to(&raw_topic).key(&key).payload(body).headers(headers);
            reports.push(producer.send_result(record).map_err(|(e, _)| anyhow::anyhow!("sending: {e}"))?);
        }
        for report in reports {
            report.await?.map_err(|(e, _)| anyhow::anyhow!("delivery: {e}"))?;
        }
    }
    let raw_rate = rate(bodies.len() as u64, started.elapsed());
    println!(
        "  raw produce to Kafka            {raw_rate:>10.0} msg/s ({:.2} s, rdkafka, idempotent, batches of {BATCH})",
        started.elapsed().as_secs_f64()
    );
    let sink = Arc::new(gemgate_sinks::kafka::KafkaSink::new(
        "bench-kafka",
        std::slice::from_ref(&bench.kafka),
        &topic,
    ));
    dispatch(store, sink, bodies.len() as u64, "Kafka", raw_rate).await?;
    let _ = admin.delete_topics(&[&raw_topic, &topic], &options).await;
    Ok(())
}

/// Redis Streams: raw pipelined XADDs of the same fields, BATCH per pipeline, then the dispatcher.
async fn redis_streams(
    bench: &DeliverBench,
    store: &SqlStore,
    bodies: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let tag = std::process::id();
    let (raw_stream, stream) = (format!("gemgate-bench-raw-{tag}"), format!("gemgate-bench-{tag}"));
    let mut connection = redis::Client::open(bench.redis.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let started = Instant::now();
    for chunk in bodies.chunks(BATCH) {
        let mut pipeline = redis::pipe();
        for (id, body) in chunk {
            pipeline
                .cmd("XADD")
                .arg(&raw_stream)
                .arg("*")
                .arg("id")
                .arg(id)
                .arg("kind")
                .arg("event")
                .arg("status")
                .arg("canonical")
                .arg("body")
                .arg(body.as_slice());
        }
        let _: Vec<String> = pipeline.query_async(&mut connection).await?;
    }
    let raw_rate = rate(bodies.len() as u64, started.elapsed());
    println!(
        "  raw XADD to Redis Streams       {raw_rate:>10.0} msg/s ({:.2} s, redis-rs, pipelines of {BATCH})",
        started.elapsed().as_secs_f64()
    );
    let sink =
        Arc::new(gemgate_sinks::redis::RedisSink::new("bench-redis", bench.redis.parse()?, &stream, None));
    dispatch(store, sink, bodies.len() as u64, "Redis Streams", raw_rate).await?;
    let _: () = redis::cmd("DEL").arg(&raw_stream).arg(&stream).query_async(&mut connection).await?;
    Ok(())
}
