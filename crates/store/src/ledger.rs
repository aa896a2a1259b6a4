//! The transaction manager's ledger: requests with the nonce allocated in the same database transaction
//! that accepts them. The nonce comes from `tx_nonces` (never a counter in memory); the sender's row there
//! is locked first, so concurrent requests for one sender take nonces one after the other, and an
//! idempotency key seen before returns the original request without spending a nonce.

use gemgate_domain::{StoreError, TxState};
use gemgate_projections::{Cell, ColumnKind};

use crate::conn::Bind;
use crate::{Dialect, SqlStore};

/// A request to send a transaction, as the API validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the request body: the same key with another body is a conflict.
    pub body_sha256: String,
    pub chain_id: u64,
    /// The configured signer's name.
    pub signer: String,
    /// The signer's address, lower case `0x` hex.
    pub sender: String,
    pub to: Option<String>,
    /// Wei, decimal.
    pub value: String,
    /// Calldata, `0x` hex.
    pub data: String,
    pub gas_limit: Option<u64>,
    pub speed: String,
    /// RFC 3339.
    pub valid_until: Option<String>,
}

/// A request in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    pub id: String,
    pub chain_id: u64,
    pub signer: String,
    pub sender: String,
    pub nonce: u64,
    pub to: Option<String>,
    pub value: String,
    pub data: String,
    pub gas_limit: Option<u64>,
    pub speed: String,
    pub state: TxState,
    pub error: Option<String>,
}

/// What accepting a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new request, with its nonce.
    New(TxRecord),
    /// The idempotency key was seen with the same body: the original request.
    Existing(TxRecord),
    /// The idempotency key was seen with another body: the original request's id.
    Conflict { id: String },
}

const RECORD: [(&str, ColumnKind); 12] = [
    ("id", ColumnKind::Text),
    ("chain_id", ColumnKind::Int),
    ("signer", ColumnKind::Text),
    ("sender", ColumnKind::Text),
    ("nonce", ColumnKind::Int),
    ("to_address", ColumnKind::Text),
    ("value", ColumnKind::Text),
    ("data", ColumnKind::Text),
    ("gas_limit", ColumnKind::Int),
    ("speed", ColumnKind::Text),
    ("state", ColumnKind::Text),
    ("error", ColumnKind::Text),
];

fn record(row: &[Cell]) -> Result<TxRecord, StoreError> {
    let text = |i: usize| row[i].as_text().map(str::to_string);
    let int = |i: usize| match row[i] {
        Cell::Int(n) => Some(n as u64),
        _ => None,
    };
    let state_text = text(10).unwrap_or_default();
    let state = serde_json::from_value(serde_json::Value::String(state_text.clone()))
        .map_err(|_| StoreError::Database { message: format!("unknown transaction state {state_text:?}") })?;
    Ok(TxRecord {
        id: text(0).unwrap_or_default(),
        chain_id: int(1).unwrap_or_default(),
        signer: text(2).unwrap_or_default(),
        sender: text(3).unwrap_or_default(),
        nonce: int(4).unwrap_or_default(),
        to: text(5),
        value: text(6).unwrap_or_default(),
        data: text(7).unwrap_or_default(),
        gas_limit: int(8),
        speed: text(9).unwrap_or_default(),
        state,
        error: text(11),
    })
}

fn columns() -> String {
    RECORD.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

fn kinds() -> Vec<ColumnKind> {
    RECORD.iter().map(|(_, k)| *k).collect()
}

impl SqlStore {
    /// Accepts a request: locks the sender's nonce row (created from `chain_nonce`, the chain's transaction
    /// count for the sender; a ledger behind the chain catches up to it), answers a known idempotency key
    /// with the original request, else allocates the next nonce and records the request as `queued`, all
    /// in one database transaction.
    pub async fn accept_transaction(
        &self,
        request: &NewTransaction,
        chain_nonce: u64,
    ) -> Result<Accepted, StoreError> {
        let mut owned = self.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let p = |n| d.param(n);
        let greatest = match d {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "GREATEST",
        };
        let key = vec![Bind::int(request.chain_id), Bind::text(&request.sender)];
        let lock = format!(
            "INSERT INTO tx_nonces (chain_id, sender, next_nonce) VALUES ({}, {}, {}) \
             ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = {greatest}(tx_nonces.next_nonce, excluded.next_nonce) \
             RETURNING next_nonce",
            p(1),
            p(2),
            p(3)
        );
        let mut binds = key.clone();
        binds.push(Bind::int(chain_nonce));
        let rows = tx.fetch(&lock, binds, &[ColumnKind::Int]).await?;
        let nonce = match rows.first().map(|r| &r[0]) {
            Some(Cell::Int(n)) => *n as u64,
            _ => return Err(StoreError::Database { message: "no nonce row".into() }),
        };

        if let Some(idempotency_key) = &request.idempotency_key {
            let sql = format!(
                "SELECT {}, body_sha256 FROM tx_requests WHERE idempotency_key = {}",
                columns(),
                p(1)
            );
            let mut with_hash = kinds();
            with_hash.push(ColumnKind::Text);
            let found = tx.fetch(&sql, vec![Bind::text(idempotency_key)], &with_hash).await?;
            if let Some(row) = found.first() {
                // Nothing written: dropping the transaction rolls back the nonce row's upsert.
                let existing = record(row)?;
                return Ok(if row[RECORD.len()].as_text() == Some(request.body_sha256.as_str()) {
                    Accepted::Existing(existing)
                } else {
                    Accepted::Conflict { id: existing.id }
                });
            }
        }

        let advance = format!(
            "UPDATE tx_nonces SET next_nonce = {} WHERE chain_id = {} AND sender = {}",
            p(1),
            p(2),
            p(3)
        );
        let mut binds = vec![Bind::int(nonce + 1)];
        binds.extend(key);
        tx.execute(&advance, binds).await?;

        let id = format!("{}-{}-{nonce}", request.chain_id, request.sender);
        let valid_until = match d {
            Dialect::Sqlite => p(12),
            Dialect::Postgres => format!("{}::timestamptz", p(12)),
        };
        let insert = format!(
            "INSERT INTO tx_requests (id, idempotency_key, body_sha256, chain_id, signer, sender, nonce, to_address, \
             value, data, gas_limit, valid_until, speed, state) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {valid_until}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11),
            p(13),
            p(14)
        );
        let binds = vec![
            Bind::text(&id),
            Bind::Text(request.idempotency_key.clone()),
            Bind::text(&request.body_sha256),
            Bind::int(request.chain_id),
            Bind::text(&request.signer),
            Bind::text(&request.sender),
            Bind::int(nonce),
            Bind::Text(request.to.clone()),
            Bind::text(&request.value),
            Bind::text(&request.data),
            Bind::Int(request.gas_limit.map(|g| g as i64)),
            Bind::Text(request.valid_until.clone()),
            Bind::text(&request.speed),
            Bind::text("queued"),
        ];
        tx.execute(&insert, binds).await?;
        owned.commit().await?;
        Ok(Accepted::New(TxRecord {
            id,
            chain_id: request.chain_id,
            signer: request.signer.clone(),
            sender: request.sender.clone(),
            nonce,
            to: request.to.clone(),
            value: request.value.clone(),
            data: request.data.clone(),
            gas_limit: request.gas_limit,
            speed: request.speed.clone(),
            state: TxState::Queued,
            error: None,
        }))
    }

    /// One request by id.
    pub async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let sql =
                    format!("SELECT {} FROM tx_requests WHERE id = {}", columns(), tx.dialect().param(1));
                let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds()).await?;
                rows.first().map(|r| record(r)).transpose()
            })
        })
        .await
    }

    /// A sender's requests on a chain in nonce order (for gap checks and the workers).
    pub async fn transactions_of(&self, chain_id: u64, sender: &str) -> Result<Vec<TxRecord>, StoreError> {
        let sender = sender.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_requests WHERE chain_id = {} AND sender = {} ORDER BY nonce",
                    columns(),
                    d.param(1),
                    d.param(2)
                );
                let rows = tx.fetch(&sql, vec![Bind::int(chain_id), Bind::text(sender)], &kinds()).await?;
                rows.iter().map(|r| record(r)).collect()
            })
        })
        .await
    }
}
