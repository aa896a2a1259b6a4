//! `gemgate consume`: the reference consumer (seed: consumers -> data processing service -> backend
//! database). It reads what a gemgate sink delivers (a RabbitMQ queue, a Kafka topic, a NATS JetStream
//! stream, a Redis stream, or signed webhooks it receives itself) and keeps a projection of trade deals in
//! its own database (`consumer_trade_deals`), exactly once per message through `gemgate-consumer`:
//! duplicates are dropped by id inside the same transaction that applies the change, retractions undo it,
//! and a message is acknowledged only after its transaction committed. A message whose handling fails is
//! retried in place, so the order per key holds.

mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{Handler, IdempotentConsumer, Outcome};
use anyhow::{Context, bail};
use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_store::{Bind, Tx};
use serde_json::Value;
use sources::Source;

/// Exactly one source: `--amqp URL --queue Q`, `--kafka BROKERS --topic T`, `--nats URL --stream S`,
/// `--redis URL --stream S`, or `--webhook-listen ADDR` with a secret.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// RabbitMQ URL to read `--queue` from.
    #[arg(long, requires = "queue")]
    amqp: Option<String>,
    /// The queue to consume (declare it with the AMQP sink's `queue` key).
    #[arg(long, requires = "amqp")]
    queue: Option<String>,
    /// Kafka brokers (host:port[,host:port...]) to read `--topic` from, in the consumer group `--name`.
    #[arg(long, requires = "topic")]
    kafka: Option<String>,
    /// The Kafka topic (the Kafka sink's `topic`).
    #[arg(long, requires = "kafka")]
    topic: Option<String>,
    /// NATS URL to read the JetStream `--stream` from, with the durable consumer `--name`.
    #[arg(long, requires = "stream")]
    nats: Option<String>,
    /// Redis URL to read the stream `--stream` from, in the consumer group `--name`.
    #[arg(long, requires = "stream")]
    redis: Option<String>,
    /// The JetStream stream (the NATS sink's `stream`) or the Redis stream key (the Redis sink's `stream`).
    #[arg(long)]
    stream: Option<String>,
    /// Receive signed webhooks on this address (point a webhook sink's `url` at it).
    #[arg(long)]
    webhook_listen: Option<SocketAddr>,
    /// A file holding the webhook secret (the sink's `secret_file`).
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// An environment variable holding the webhook secret (the sink's `secret_env`).
    #[arg(long)]
    webhook_secret_env: Option<String>,
    /// The consumer's own database: sqlite://FILE or postgres://...
    #[arg(long, default_value = "sqlite://gemgate-consumer.db")]
    database: String,
    /// The consumer's name in its deduplication table.
    #[arg(long, default_value = "reference")]
    name: String,
}

/// Trade deals as a backend would keep them: one row per deal from `TradeDealCreated`, its current name
/// and symbol (from the latest `TradeDealCreated`/`TradeDealUpdated`), and how many events touched it.
#[derive(Debug)]
struct TradeDeals;

fn deal_id(envelope: &Value) -> Option<String> {
    envelope.get("args")?.get("tradeDealId")?.as_str().map(str::to_string)
}

/// The events that name a deal (creation and updates), kept per event so a retraction can remove one
/// and the deal's current name is always the latest remaining.
const NAMING: [&str; 2] = ["TradeDealCreated", "TradeDealUpdated"];

#[async_trait]
impl Handler for TradeDeals {
    async fn apply(&self, tx: &mut dyn Tx, envelope: &Value) -> Result<(), StoreError> {
        let Some(id) = deal_id(envelope) else { return Ok(()) };
        let d = tx.dialect();
        let p = |n| d.param(n);
        let text = |key: &str| envelope.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let number = |key: &str| envelope.get(key).and_then(Value::as_u64).unwrap_or_default();
        let arg =
            |key: &str| envelope["args"].get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let event = text("event");
        if event == "TradeDealCreated" {
            let sql = format!(
                "INSERT INTO consumer_trade_deals (trade_deal_id, name, symbol, created_block, created_tx, events) \
                 VALUES ({}, '', '', {}, {}, 0)",
                p(1),
                p(2),
                p(3)
            );
            tx.execute(
                &sql,
                vec![Bind::text(&id), Bind::int(number("block_number")), Bind::text(text("tx_hash"))],
            )
            .await?;
        }
        if NAMING.contains(&event.as_str()) {
            let sql = format!(
                "INSERT INTO consumer_deal_names (event_id, trade_deal_id, block_number, log_index, name, symbol) \
                 VALUES ({}, {}, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            );
            let binds = vec![
                Bind::text(text("id")),
                Bind::text(&id),
                Bind::int(number("block_number")),
                Bind::int(number("log_index")),
                Bind::text(arg("name")),
                Bind::text(arg("symbol")),
            ];
            tx.execute(&sql, binds).await?;
            rename(tx, &id).await?;
        }
        let sql =
            format!("UPDATE consumer_trade_deals SET events = events + 1 WHERE trade_deal_id = {}", p(1));
        tx.execute(&sql, vec![Bind::text(id)]).await.map(|_| ())
    }

    async fn retract(&self, tx: &mut dyn Tx, envelope: &Value) -> Result<(), StoreError> {
        let Some(id) = deal_id(envelope) else { return Ok(()) };
        let d = tx.dialect();
        let event = envelope.get("event").and_then(Value::as_str).unwrap_or_default();
        let event_id = envelope.get("id").and_then(Value::as_str).unwrap_or_default();
        if event == "TradeDealCreated" {
            let sql = format!("DELETE FROM consumer_trade_deals WHERE trade_deal_id = {}", d.param(1));
            tx.execute(&sql, vec![Bind::text(&id)]).await?;
        } else {
            let sql = format!(
                "UPDATE consumer_trade_deals SET events = events - 1 WHERE trade_deal_id = {}",
                d.param(1)
            );
            tx.execute(&sql, vec![Bind::text(&id)]).await?;
        }
        if NAMING.contains(&event) {
            let sql = format!("DELETE FROM consumer_deal_names WHERE event_id = {}", d.param(1));
            tx.execute(&sql, vec![Bind::text(event_id)]).await?;
            rename(tx, &id).await?;
        }
        Ok(())
    }
}

/// Sets a deal's name and symbol from its latest remaining naming event.
async fn rename(tx: &mut dyn Tx, id: &str) -> Result<(), StoreError> {
    let d = tx.dialect();
    let latest = |column: &str| {
        format!(
            "(SELECT {column} FROM consumer_deal_names WHERE trade_deal_id = {} \
             ORDER BY block_number DESC, log_index DESC LIMIT 1)",
            d.param(1)
        )
    };
    let sql = format!(
        "UPDATE consumer_trade_deals SET name = COALESCE({}, ''), symbol = COALESCE({}, '') WHERE trade_deal_id = {}",
        latest("name"),
        latest("symbol"),
        d.param(1)
    );
    tx.execute(&sql, vec![Bind::text(id)]).await.map(|_| ())
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let consumer = IdempotentConsumer::open(&args.database, &args.name)
        .await
        .context("opening the consumer database")?;
    consumer
        .database()
        .execute_admin(
            "CREATE TABLE IF NOT EXISTS consumer_trade_deals (trade_deal_id TEXT PRIMARY KEY, name TEXT NOT NULL, \
             symbol TEXT NOT NULL, created_block BIGINT NOT NULL, created_tx TEXT NOT NULL, events BIGINT NOT NULL)",
        )
        .await?;
    consumer
        .database()
        .execute_admin(
            "CREATE TABLE IF NOT EXISTS consumer_deal_names (event_id TEXT PRIMARY KEY, trade_deal_id TEXT NOT NULL, \
             block_number BIGINT NOT NULL, log_index BIGINT NOT NULL, name TEXT NOT NULL, symbol TEXT NOT NULL)",
        )
        .await?;
    let database = match url::Url::parse(&args.database) {
        Ok(url) => gemgate_config::SecretUrl::new(url).redacted(),
        Err(_) => "(unparsable URL)".into(),
    };
    tracing::info!(%database, "consuming");
    let name = args.name.as_str();
    match (&args.amqp, &args.kafka, &args.nats, &args.redis, &args.webhook_listen) {
        (Some(url), None, None, None, None) => {
            let queue = args.queue.as_deref().unwrap_or_default();
            consume(sources::Amqp::open(url, queue, name).await?, &consumer).await
        }
        (None, Some(brokers), None, None, None) => {
            let topic = args.topic.as_deref().unwrap_or_default();
            consume(sources::Kafka::open(brokers, topic, name)?, &consumer).await
        }
        (None, None, Some(url), None, None) => {
            let stream = args.stream.as_deref().unwrap_or_default();
            consume(sources::Nats::open(url, stream, name).await?, &consumer).await
        }
        (None, None, None, Some(url), None) => {
            let stream = args.stream.as_deref().unwrap_or_default();
            consume(sources::Redis::open(url, stream, name).await?, &consumer).await
        }
        (None, None, None, None, Some(listen)) => {
            let secret = match (&args.webhook_secret_file, &args.webhook_secret_env) {
                (Some(file), None) => std::fs::read_to_string(file)
                    .with_context(|| format!("reading the webhook secret file {}", file.display()))?,
                (None, Some(var)) => std::env::var(var)
                    .with_context(|| format!("the webhook secret variable {var} is not set"))?,
                _ => bail!(
                    "--webhook-listen needs exactly one of --webhook-secret-file and --webhook-secret-env"
                ),
            };
            consume(sources::Webhooks::open(*listen, vec![secret.trim().to_string()]).await?, &consumer).await
        }
        _ => bail!(
            "choose exactly one source: --amqp URL --queue Q, --kafka BROKERS --topic T, --nats URL --stream S, \
             --redis URL --stream S, or --webhook-listen ADDR"
        ),
    }
}

/// Handles every message from `source` until it ends or Ctrl-C: each exactly once in the consumer's
/// database, settled only after its transaction committed.
async fn consume<S: Source>(mut source: S, consumer: &IdempotentConsumer) -> anyhow::Result<()> {
    let (mut applied, mut duplicates) = (0u64, 0u64);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (body, token) = tokio::select! {
            _ = &mut shutdown => break,
            next = source.next() => match next? {
                Some(next) => next,
                None => break,
            },
        };
        let envelope: Value = match serde_json::from_slice::<Value>(&body) {
            // A structured CloudEvent (`format = "cloudevents"`) carries the envelope as its data.
            Ok(mut event) if event.get("specversion").is_some() && event["data"].is_object() => {
                event["data"].take()
            }
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::error!(%error, "not a JSON envelope; dropped");
                source.settle(token).await?;
                continue;
            }
        };
        loop {
            match consumer.handle(&envelope, &TradeDeals).await {
                Ok(Outcome::Duplicate) => duplicates += 1,
                Ok(_) => applied += 1,
                Err(error) => {
                    tracing::warn!(%error, "handling failed; trying the same message again");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => continue,
                    }
                }
            }
            break;
        }
        source.settle(token).await?;
        if (applied + duplicates) % 1_000 == 0 {
            tracing::info!(applied, duplicates, "progress");
        }
    }
    tracing::info!(applied, duplicates, "stopped");
    Ok(())
}
