//! Bulk writes of events and outbox rows, the hot path of backfill: multi-row prepared inserts on SQLite
//! (full chunks share one statement text, so sqlx prepares it once), `UNNEST` of arrays on Postgres (one
//! statement and fourteen binds however many rows).

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

#[async_trait]
impl BulkWrite for Transaction<'static, Postgres> {
    async fn insert_events(&mut self, rows: &[EventRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // One pass over the rows into column arrays (the binds own them).
        let n = rows.len();
        let (mut id, mut chain, mut block, mut block_hash, mut tx_hash) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut tx_index, mut log_index, mut address, mut contract, mut event) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut signature, mut args, mut topics, mut data) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for r in rows {
            id.push(r.id.as_str());
            chain.push(r.chain_id);
            block.push(r.block_number);
            block_hash.push(r.block_hash.as_str());
            tx_hash.push(r.tx_hash.as_str());
            tx_index.push(r.tx_index);
            log_index.push(r.log_index);
            address.push(r.address.as_str());
            contract.push(r.contract.as_str());
            event.push(r.event.as_str());
            signature.push(r.signature.as_str());
            args.push(r.args.as_deref());
            topics.push(r.topics.as_str());
            data.push(r.data.as_str());
        }
        sqlx::query::<Postgres>(
            "INSERT INTO events (id, chain_id, block_number, block_hash, tx_hash, tx_index, log_index, address, \
             contract, event, signature, args, topics, data) \
             SELECT id, chain_id, block_number, block_hash, tx_hash, tx_index, log_index, address, contract, event, \
             signature, args::jsonb, topics::jsonb, data \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[]) \
             AS t(id, chain_id, block_number, block_hash, tx_hash, tx_index, log_index, address, contract, event, \
             signature, args, topics, data)",
        )
        .bind(id)
        .bind(chain)
        .bind(block)
        .bind(block_hash)
        .bind(tx_hash)
        .bind(tx_index)
        .bind(log_index)
        .bind(address)
        .bind(contract)
        .bind(event)
        .bind(signature)
        .bind(args)
        .bind(topics)
        .bind(data)
        .execute(&mut **self)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn insert_outbox(&mut self, rows: &[OutboxRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let texts = |f: fn(&OutboxRow) -> &String| rows.iter().map(|r| f(r).clone()).collect::<Vec<String>>();
        sqlx::query::<Postgres>(
            "INSERT INTO outbox (id, kind, chain_id, block_number, ordering_key, status, payload) \
             SELECT id, kind, chain_id, block_number, ordering_key, status, payload::jsonb \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[]) \
             WITH ORDINALITY AS t(id, kind, chain_id, block_number, ordering_key, status, payload, n) ORDER BY n",
        )
        .bind(texts(|r| &r.id))
        .bind(texts(|r| &r.kind))
        .bind(rows.iter().map(|r| r.chain_id).collect::<Vec<i64>>())
        .bind(rows.iter().map(|r| r.block_number).collect::<Vec<Option<i64>>>())
        .bind(texts(|r| &r.ordering_key))
        .bind(texts(|r| &r.status))
        .bind(rows.iter().map(|r| r.payload.clone()).collect::<Vec<Option<String>>>())
        .execute(&mut **self)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
