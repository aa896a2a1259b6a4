//! Bulk writes of events and outbox rows, the hot path of backfill: multi-row prepared inserts on SQLite
//! (full chunks share one statement text, so sqlx prepares it once); on Postgres binary `COPY` for events
//! and one `UNNEST` insert for outbox rows.

use async_trait::async_trait;
use gemgate_domain::StoreError;
use sqlx::postgres::PgCopyIn;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Sqlite, Transaction};

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
    /// The transaction's sender, for the events whose projections need it (a trade deal's creator).
    pub tx_from: Option<String>,
}

/// An outbox row as stored.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub chain_id: i64,
    pub block_number: Option<i64>,
    /// The event's log index, for a canonical chain event (its key in `events` with the block number).
    pub log_index: Option<i64>,
    pub ordering_key: String,
    pub status: String,
    /// `None` for a canonical chain event (the events row is its envelope).
    pub payload: Option<String>,
}

const EVENT_COLUMNS: &str = "id, chain_id, block_number, block_hash, tx_hash, tx_index, log_index, address, \
                             contract, event, signature, args, topics, data, tx_from";
const OUTBOX_COLUMNS: &str = "id, kind, chain_id, block_number, log_index, ordering_key, status, payload";

/// Postgres advisory lock key serialising outbox writers ("gemgate outbox" as an integer).
const OUTBOX_LOCK: i64 = 0x6765_6d67_6f75_7462;

/// SQLite allows 32,766 bound parameters per statement; 500 rows of 15 columns stay well below.
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
                format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES {}", values_clause(chunk.len(), 15));
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
                    .bind(r.data.clone())
                    .bind(r.tx_from.clone());
            }
            query.execute(&mut **self).await.map_err(db_error)?;
        }
        Ok(())
    }

    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(SQLITE_CHUNK) {
            let sql =
                format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES {}", values_clause(chunk.len(), 8));
            let mut query = sqlx::query::<Sqlite>(AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(r.id.clone())
                    .bind(r.kind.clone())
                    .bind(r.chain_id)
                    .bind(r.block_number)
                    .bind(r.log_index)
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
/// The rows are streamed in chunks, so the server inserts one chunk while the next is encoded.
struct CopyBinary {
    buffer: Vec<u8>,
}

/// Bytes encoded before a chunk is sent.
const COPY_CHUNK: usize = 256 * 1024;

impl CopyBinary {
    fn new() -> Self {
        let mut buffer = Vec::with_capacity(COPY_CHUNK + 4096);
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

    fn optional_text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(COPY_CHUNK + 4096))
    }
}

/// COPYs rows into a table, encoding each with `encode` and sending every `COPY_CHUNK` bytes.
async fn copy_in<T>(
    tx: &mut Transaction<'static, Postgres>,
    statement: &str,
    rows: &[T],
    encode: impl Fn(&mut CopyBinary, &T),
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = tx.copy_in_raw(statement).await.map_err(db_error)?;
    let mut buffer = CopyBinary::new();
    for row in rows {
        encode(&mut buffer, row);
        if buffer.buffer.len() >= COPY_CHUNK {
            copy = send_or_abort(copy, buffer.take()).await?;
        }
    }
    buffer.buffer.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
    copy = send_or_abort(copy, buffer.take()).await?;
    copy.finish().await.map_err(db_error)?;
    Ok(())
}

async fn send_or_abort(
    mut copy: PgCopyIn<&mut PgConnection>,
    data: Vec<u8>,
) -> Result<PgCopyIn<&mut PgConnection>, StoreError> {
    if let Err(error) = copy.send(data).await {
        let _ = copy.abort(error.to_string()).await;
        return Err(db_error(error));
    }
    Ok(copy)
}

#[async_trait]
impl BulkWrite for Transaction<'static, Postgres> {
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<(), StoreError> {
        let statement = format!("COPY events ({EVENT_COLUMNS}) FROM STDIN (FORMAT binary)");
        copy_in(self, &statement, rows, |copy, r| {
            copy.row(15);
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
            // args and topics are JSON columns (kept as sent), whose binary form is the text itself.
            copy.optional_text(r.args.as_deref());
            copy.text(&r.topics);
            copy.text(&r.data);
            copy.optional_text(r.tx_from.as_deref());
        })
        .await
    }

    /// One `INSERT ... SELECT FROM UNNEST` rather than a COPY: the rows are few bytes each, and a COPY's
    /// closing message, written after its data, can wait out the server's delayed ACK (40 ms on Linux),
    /// which cost more than the insert itself.
    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Rows must become visible in `seq` order, or a dispatcher could pass a seq whose transaction has
        // not committed yet and never see it. One transaction at a time allocates seqs: this lock is held
        // until commit (after which the rows are visible).
        sqlx::query::<Postgres>("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_LOCK)
            .execute(&mut **self)
            .await
            .map_err(db_error)?;
        let texts = |f: fn(&OutboxRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        sqlx::query::<Postgres>(
            "INSERT INTO outbox (id, kind, chain_id, block_number, log_index, ordering_key, status, payload) \
             SELECT id, kind, chain_id, block_number, log_index, ordering_key, status, payload::jsonb \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], \
             $8::text[]) WITH ORDINALITY AS t(id, kind, chain_id, block_number, log_index, ordering_key, status, \
             payload, n) ORDER BY n",
        )
        .bind(texts(|r| &r.id))
        .bind(texts(|r| &r.kind))
        .bind(rows.iter().map(|r| r.chain_id).collect::<Vec<i64>>())
        .bind(rows.iter().map(|r| r.block_number).collect::<Vec<Option<i64>>>())
        .bind(rows.iter().map(|r| r.log_index).collect::<Vec<Option<i64>>>())
        .bind(texts(|r| &r.ordering_key))
        .bind(texts(|r| &r.status))
        .bind(rows.iter().map(|r| r.payload.as_deref()).collect::<Vec<Option<&str>>>())
        .execute(&mut **self)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
