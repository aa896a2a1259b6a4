//! Bulk writes of events and outbox rows, the hot path of backfill: multi-row prepared inserts on SQLite
//! (full chunks share one statement text, so sqlx prepares it once), binary `COPY` on Postgres.

use async_trait::async_trait;
use gemgate_domain::StoreError;
use sqlx::{AssertSqlSafe, Postgres, Sqlite, Transaction};

use crate::conn::db_error;

/// An event as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub chain_id: i64,
    pub block_number: i64,
    pub block_hash: String,
    pub tx_hash: String,
    pub tx_index: i64,
    pub log_index: i64,
    pub address: String,
    pub contract: String,
    pub event: String,
    pub signature: String,
    pub args: Option<String>,
    pub topics: String,
    pub data: String,
}

/// An outbox row as stored.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub chain_id: i64,
    pub block_number: Option<i64>,
    pub ordering_key: String,
    pub status: String,
    /// `None` for a canonical chain event (the events row is its envelope).
    pub payload: Option<String>,
}

const EVENT_COLUMNS: &str = "id, chain_id, block_number, block_hash, tx_hash, tx_index, log_index, address, \
                             contract, event, signature, args, topics, data";
const OUTBOX_COLUMNS: &str = "id, kind, chain_id, block_number, ordering_key, status, payload";

/// SQLite allows 32,766 bound parameters per statement; 500 rows of 14 columns stay well below.
const SQLITE_CHUNK: usize = 500;

#[async_trait]
pub trait BulkWrite: Send {
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<(), StoreError>;
    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError>;
}

fn values_clause(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    vec![row; rows].join(",")
}

#[async_trait]
impl BulkWrite for Transaction<'static, Sqlite> {
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(SQLITE_CHUNK) {
            let sql =
                format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES {}", values_clause(chunk.len(), 14));
            let mut query = sqlx::query::<Sqlite>(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(r.id.clone())
                    .bind(r.chain_id)
                    .bind(r.block_number)
                    .bind(r.block_hash.clone())
                    .bind(r.tx_hash.clone())
                    .bind(r.tx_index)
                    .bind(r.log_index)
                    .bind(r.address.clone())
                    .bind(r.contract.clone())
                    .bind(r.event.clone())
                    .bind(r.signature.clone())
                    .bind(r.args.clone())
                    .bind(r.topics.clone())
                    .bind(r.data.clone());
            }
            query.execute(&mut **self).await.map_err(db_error)?;
        }
        Ok(())
    }

    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(SQLITE_CHUNK) {
            let sql =
                format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES {}", values_clause(chunk.len(), 7));
            let mut query = sqlx::query::<Sqlite>(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(r.id.clone())
                    .bind(r.kind.clone())
                    .bind(r.chain_id)
                    .bind(r.block_number)
                    .bind(r.ordering_key.clone())
                    .bind(r.status.clone())
                    .bind(r.payload.clone());
            }
            query.execute(&mut **self).await.map_err(db_error)?;
        }
        Ok(())
    }
}

/// Rows in Postgres' binary COPY format: a header, then per row a field count and length-prefixed fields,
/// then a trailer. Binary COPY skips the text parsing a multi-row insert or array unnest pays per value.
struct CopyBinary {
    buffer: Vec<u8>,
}

impl CopyBinary {
    fn new(rows: usize) -> Self {
        let mut buffer = Vec::with_capacity(rows * 512 + 32);
        buffer.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buffer.extend_from_slice(&0i32.to_be_bytes()); // flags
        buffer.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buffer }
    }

    fn row(&mut self, fields: i16) {
        self.buffer.extend_from_slice(&fields.to_be_bytes());
    }

    fn text(&mut self, value: &str) {
        self.buffer.extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.buffer.extend_from_slice(value.as_bytes());
    }

    fn bigint(&mut self, value: i64) {
        self.buffer.extend_from_slice(&8i32.to_be_bytes());
        self.buffer.extend_from_slice(&value.to_be_bytes());
    }

    fn null(&mut self) {
        self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// JSONB in binary is a version byte (1) and the JSON text.
    fn jsonb(&mut self, value: &str) {
        self.buffer.extend_from_slice(&(value.len() as i32 + 1).to_be_bytes());
        self.buffer.push(1);
        self.buffer.extend_from_slice(value.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        self.buffer
    }
}

async fn copy_in(
    tx: &mut Transaction<'static, Postgres>,
    statement: &str,
    data: Vec<u8>,
) -> Result<(), StoreError> {
    let mut copy = tx.copy_in_raw(statement).await.map_err(db_error)?;
    if let Err(error) = copy.send(data).await {
        let _ = copy.abort(error.to_string()).await;
        return Err(db_error(error));
    }
    copy.finish().await.map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl BulkWrite for Transaction<'static, Postgres> {
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut copy = CopyBinary::new(rows.len());
        for r in rows {
            copy.row(14);
            copy.text(&r.id);
            copy.bigint(r.chain_id);
            copy.bigint(r.block_number);
            copy.text(&r.block_hash);
            copy.text(&r.tx_hash);
            copy.bigint(r.tx_index);
            copy.bigint(r.log_index);
            copy.text(&r.address);
            copy.text(&r.contract);
            copy.text(&r.event);
            copy.text(&r.signature);
            match &r.args {
                Some(args) => copy.jsonb(args),
                None => copy.null(),
            }
            copy.jsonb(&r.topics);
            copy.text(&r.data);
        }
        copy_in(self, &format!("COPY events ({EVENT_COLUMNS}) FROM STDIN (FORMAT binary)"), copy.finish())
            .await
    }

    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // COPY keeps the rows' order, so `seq` follows it.
        let mut copy = CopyBinary::new(rows.len());
        for r in rows {
            copy.row(7);
            copy.text(&r.id);
            copy.text(&r.kind);
            copy.bigint(r.chain_id);
            match r.block_number {
                Some(n) => copy.bigint(n),
                None => copy.null(),
            }
            copy.text(&r.ordering_key);
            copy.text(&r.status);
            match &r.payload {
                Some(payload) => copy.jsonb(payload),
                None => copy.null(),
            }
        }
        copy_in(self, &format!("COPY outbox ({OUTBOX_COLUMNS}) FROM STDIN (FORMAT binary)"), copy.finish())
            .await
    }
}
