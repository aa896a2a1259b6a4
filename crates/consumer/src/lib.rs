//! The consumer side of delivery (seed: consumers -> data processing -> backend database). Brokers deliver
//! at least once, so a consumer sees some messages twice, always with the same `id`; a reorg can retract
//! an event it already applied, and a second reorg can bring it back (the same `id`, canonical again).
//! [`IdempotentConsumer::handle`] makes that safe: inside one transaction of the consumer's own database
//! (SQLite or Postgres) it keeps each id's state in `gemgate_consumed` and runs the handler only on a
//! change: `apply` when a canonical message finds the id not applied, `retract` when a retraction finds it
//! applied. Anything else is a duplicate and does nothing. A crash before the commit leaves neither the
//! state nor the handler's writes, so the redelivery applies it.

/// The reference consumer (`gemgate consume`), with the `reference` feature.
#[cfg(feature = "reference")]
pub mod reference;

use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_projections::ProjectionSet;
use gemgate_store::{Bind, SqlStore, Tx};
use serde_json::Value;

/// What a consumer does with messages, in the consumer's transaction.
#[async_trait]
pub trait Handler: Send + Sync {
    /// A canonical message (`status: "canonical"`).
    async fn apply(&self, tx: &mut dyn Tx, envelope: &Value) -> Result<(), StoreError>;
    /// A retraction (`status: "retracted"`): undo what `apply` did for the same id.
    async fn retract(&self, tx: &mut dyn Tx, envelope: &Value) -> Result<(), StoreError>;
}

/// What `handle` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Retracted,
    /// Seen before: nothing done.
    Duplicate,
}

/// A consumer's database with its deduplication table.
#[derive(Debug, Clone)]
pub struct IdempotentConsumer {
    name: String,
    db: SqlStore,
}

/// Why a message cannot be handled.
fn invalid(message: &str) -> StoreError {
    StoreError::Database { message: message.to_string() }
}

impl IdempotentConsumer {
    /// Opens `sqlite://FILE` or `postgres://...` and creates `gemgate_consumed` if missing.
    pub async fn open(url: &str, name: &str) -> Result<Self, StoreError> {
        let db = SqlStore::connect(url, 4, ProjectionSet::default()).await?;
        db.execute_admin(
            "CREATE TABLE IF NOT EXISTS gemgate_consumed (consumer TEXT NOT NULL, id TEXT NOT NULL, \
             status TEXT NOT NULL, PRIMARY KEY (consumer, id, status))",
        )
        .await?;
        Ok(Self { name: name.to_string(), db })
    }

    /// The consumer's database, for creating its own tables and reading them.
    pub fn database(&self) -> &SqlStore {
        &self.db
    }

    /// Applies (or retracts) one delivered envelope exactly once.
    pub async fn handle(&self, envelope: &Value, handler: &dyn Handler) -> Result<Outcome, StoreError> {
        let id =
            envelope.get("id").and_then(Value::as_str).ok_or_else(|| invalid("the message has no id"))?;
        let retracted = envelope.get("status").and_then(Value::as_str) == Some("retracted");
        let mut owned = self.db.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let (p1, p2, p3) = (d.param(1), d.param(2), d.param(3));
        // A row (consumer, id, 'canonical') means "applied"; (consumer, id, 'retracted') records a retraction.
        let insert = format!(
            "INSERT INTO gemgate_consumed (consumer, id, status) VALUES ({p1}, {p2}, {p3}) ON CONFLICT DO NOTHING"
        );
        let delete =
            format!("DELETE FROM gemgate_consumed WHERE consumer = {p1} AND id = {p2} AND status = {p3}");
        let binds = |status: &str| vec![Bind::text(&self.name), Bind::text(id), Bind::text(status)];
        let outcome = if retracted {
            if tx.execute(&delete, binds("canonical")).await? == 0 {
                Outcome::Duplicate // never applied, or retracted already
            } else {
                tx.execute(&insert, binds("retracted")).await?;
                handler.retract(tx, envelope).await?;
                Outcome::Retracted
            }
        } else if tx.execute(&insert, binds("canonical")).await? == 0 {
            Outcome::Duplicate
        } else {
            tx.execute(&delete, binds("retracted")).await?;
            handler.apply(tx, envelope).await?;
            Outcome::Applied
        };
        owned.commit().await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts applications in a table of its own, in the consumer's transaction.
    struct Counter {
        failures_left: AtomicUsize,
    }

    #[async_trait]
    impl Handler for Counter {
        async fn apply(&self, tx: &mut dyn Tx, _: &Value) -> Result<(), StoreError> {
            tx.execute("UPDATE counts SET n = n + 1", Vec::new()).await?;
            if self.failures_left.load(Ordering::SeqCst) > 0 {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                return Err(invalid("handler failed after writing"));
            }
            Ok(())
        }
        async fn retract(&self, tx: &mut dyn Tx, _: &Value) -> Result<(), StoreError> {
            tx.execute("UPDATE counts SET n = n - 1", Vec::new()).await.map(|_| ())
        }
    }

    async fn count(consumer: &IdempotentConsumer) -> i64 {
        let mut owned = consumer.database().begin().await.unwrap();
        let rows = owned
            .tx()
            .fetch("SELECT n FROM counts", Vec::new(), &[gemgate_projections::ColumnKind::Int])
            .await
            .unwrap();
        owned.commit().await.unwrap();
        match rows[0][0] {
            gemgate_projections::Cell::Int(n) => n,
            _ => panic!("no count"),
        }
    }

    #[tokio::test]
    async fn duplicates_do_nothing_failures_roll_back_and_retractions_undo() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("consumer.db").display());
        let consumer = IdempotentConsumer::open(&url, "test").await.unwrap();
        consumer.database().execute_admin("CREATE TABLE counts (n INTEGER NOT NULL)").await.unwrap();
        consumer.database().execute_admin("INSERT INTO counts VALUES (0)").await.unwrap();
        let handler = Counter { failures_left: AtomicUsize::new(1) };
        let event = serde_json::json!({"id": "0x01", "status": "canonical"});

        assert!(consumer.handle(&event, &handler).await.is_err(), "the handler fails once");
        assert_eq!(count(&consumer).await, 0, "its write and the dedup row rolled back together");
        assert_eq!(consumer.handle(&event, &handler).await.unwrap(), Outcome::Applied, "redelivery applies");
        assert_eq!(consumer.handle(&event, &handler).await.unwrap(), Outcome::Duplicate);
        assert_eq!(count(&consumer).await, 1);
        let retraction = serde_json::json!({"id": "0x01", "status": "retracted"});
        assert_eq!(consumer.handle(&retraction, &handler).await.unwrap(), Outcome::Retracted);
        assert_eq!(consumer.handle(&retraction, &handler).await.unwrap(), Outcome::Duplicate);
        assert_eq!(count(&consumer).await, 0);
        assert!(
            consumer.handle(&serde_json::json!({"status": "canonical"}), &handler).await.is_err(),
            "no id"
        );
    }

    #[tokio::test]
    async fn an_event_a_second_reorg_brings_back_is_applied_again_and_a_stray_retraction_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("consumer.db").display());
        let consumer = IdempotentConsumer::open(&url, "test").await.unwrap();
        consumer.database().execute_admin("CREATE TABLE counts (n INTEGER NOT NULL)").await.unwrap();
        consumer.database().execute_admin("INSERT INTO counts VALUES (0)").await.unwrap();
        let handler = Counter { failures_left: AtomicUsize::new(0) };
        let event = serde_json::json!({"id": "0x02", "status": "canonical"});
        let retraction = serde_json::json!({"id": "0x02", "status": "retracted"});
        // Reorged away and back (A -> B -> A): the same id canonical, retracted, canonical again.
        assert_eq!(consumer.handle(&event, &handler).await.unwrap(), Outcome::Applied);
        assert_eq!(consumer.handle(&retraction, &handler).await.unwrap(), Outcome::Retracted);
        assert_eq!(consumer.handle(&event, &handler).await.unwrap(), Outcome::Applied);
        assert_eq!(consumer.handle(&event, &handler).await.unwrap(), Outcome::Duplicate);
        assert_eq!(count(&consumer).await, 1, "applied once more after its retraction");
        // A retraction of something never applied undoes nothing.
        let stray = serde_json::json!({"id": "0x03", "status": "retracted"});
        assert_eq!(consumer.handle(&stray, &handler).await.unwrap(), Outcome::Duplicate);
        assert_eq!(count(&consumer).await, 1);
    }
}
