//! `gemgate consume`: the reference consumer (seed: consumers -> data processing service -> backend
//! database). It reads a RabbitMQ queue that a gemgate AMQP sink fills and keeps a projection of trade
//! deals in its own database (`consumer_trade_deals`), exactly once per message through
//! `gemgate-consumer`: duplicates are dropped by id inside the same transaction that applies the change,
//! retractions undo it, and a message is acknowledged only after its transaction committed.

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use gemgate_consumer::{Handler, IdempotentConsumer, Outcome};
use gemgate_domain::StoreError;
use gemgate_store::{Bind, Tx};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// RabbitMQ to read from.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// The queue to consume (declare it with the sink's `queue` key).
    #[arg(long)]
    queue: String,
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
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let connection =
        lapin::Connection::connect(&args.amqp, properties).await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(500, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(&args.queue, &args.name, BasicConsumeOptions::default(), FieldTable::default())
        .await
        .with_context(|| format!("consuming queue {}", args.queue))?;
    tracing::info!(queue = %args.queue, database = %args.database, "consuming");
    let (mut applied, mut duplicates) = (0u64, 0u64);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let delivery = tokio::select! {
            _ = &mut shutdown => break,
            next = deliveries.next() => match next {
                Some(delivery) => delivery?,
                None => break,
            },
        };
        let envelope: Value = match serde_json::from_slice(&delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::error!(%error, "not a JSON envelope; dropped");
                delivery.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await?;
                continue;
            }
        };
        match consumer.handle(&envelope, &TradeDeals).await {
            Ok(Outcome::Duplicate) => duplicates += 1,
            Ok(_) => applied += 1,
            Err(error) => {
                tracing::warn!(%error, "handling failed; the message goes back to the queue");
                delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
        if (applied + duplicates) % 1_000 == 0 {
            tracing::info!(applied, duplicates, "progress");
        }
    }
    tracing::info!(applied, duplicates, "stopped");
    Ok(())
}
