//! The transaction manager's ledger: requests with the nonce allocated in the same database transaction
//! that accepts them, their attempts (signed bytes stored before broadcast), the lease that makes one worker
//! per (chain, sender) the only writer, and an outbox row for every state change.
//!
//! The nonce comes from `tx_nonces` (never a counter in memory); the sender's row there is locked first, so
//! concurrent requests for one sender take nonces one after the other, and an idempotency key seen before
//! returns the original request without spending a nonce. Every lifecycle write is a compare-and-set on the
//! request's `revision`, and a worker's writes also check its lease's fencing token in the same transaction.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::U256;
pub use gemgate_domain::ledger::*;
use gemgate_domain::relay::RelayedCall;
use gemgate_domain::{StoreError, TxState};
use gemgate_projections::{Cell, ColumnKind};

mod accept;
mod lifecycle;
mod reads;
mod relay;

use crate::bulk::OutboxRow;
use crate::conn::{Bind, db_error};
use crate::write::Tx;
use crate::{Dialect, Pool, SqlStore};

/// The states whose cost is still to be paid (for the balance check).
const PENDING_STATES: &str = "'queued', 'signed', 'submitted'";

const RECORD: [(&str, ColumnKind); 22] = [
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
    ("origin", ColumnKind::Text),
    ("ending", ColumnKind::Text),
    ("revision", ColumnKind::Int),
    ("tx_hash", ColumnKind::Text),
    ("block_number", ColumnKind::Int),
    ("block_hash", ColumnKind::Text),
    ("receipt", ColumnKind::Text),
    ("valid_until_text", ColumnKind::Text),
    ("valid_until_ms", ColumnKind::Int),
    ("body_sha256", ColumnKind::Text),
];

const ATTEMPT: [(&str, ColumnKind); 9] = [
    ("request_id", ColumnKind::Text),
    ("attempt", ColumnKind::Int),
    ("purpose", ColumnKind::Text),
    ("hash", ColumnKind::Text),
    ("raw", ColumnKind::Text),
    ("gas_limit", ColumnKind::Int),
    ("max_fee_per_gas", ColumnKind::Text),
    ("max_priority_fee_per_gas", ColumnKind::Text),
    ("sent_ms", ColumnKind::Int),
];

fn parse_state(text: &str) -> Result<TxState, StoreError> {
    TxState::parse(text)
        .ok_or_else(|| StoreError::Database { message: format!("unknown transaction state {text:?}") })
}

fn text(row: &[Cell], i: usize) -> Option<String> {
    row[i].as_text().map(str::to_string)
}

fn int(row: &[Cell], i: usize) -> Option<u64> {
    match row[i] {
        Cell::Int(n) => Some(n as u64),
        _ => None,
    }
}

/// One request by id, read inside `tx`.
async fn record_by_id(tx: &mut dyn Tx, id: &str) -> Result<Option<TxRecord>, StoreError> {
    let d = tx.dialect();
    let sql = format!("SELECT {} FROM tx_requests WHERE id = {}", columns(d), d.param(1));
    let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds(&RECORD)).await?;
    rows.first().map(|r| record(r)).transpose()
}

fn record(row: &[Cell]) -> Result<TxRecord, StoreError> {
    Ok(TxRecord {
        id: text(row, 0).unwrap_or_default(),
        chain_id: int(row, 1).unwrap_or_default(),
        signer: text(row, 2).unwrap_or_default(),
        sender: text(row, 3).unwrap_or_default(),
        nonce: int(row, 4).unwrap_or_default(),
        to: text(row, 5),
        value: text(row, 6).unwrap_or_default(),
        data: text(row, 7).unwrap_or_default(),
        gas_limit: int(row, 8),
        speed: text(row, 9).unwrap_or_default(),
        state: parse_state(&text(row, 10).unwrap_or_default())?,
        error: text(row, 11),
        origin: text(row, 12).unwrap_or_default(),
        ending: text(row, 13).map(|t| parse_state(&t)).transpose()?,
        revision: int(row, 14).unwrap_or_default(),
        tx_hash: text(row, 15),
        block_number: int(row, 16),
        block_hash: text(row, 17),
        receipt: text(row, 18),
        valid_until: text(row, 19),
        valid_until_ms: int(row, 20),
    })
}

fn attempt(row: &[Cell]) -> Attempt {
    Attempt {
        attempt: int(row, 1).unwrap_or_default() as u32,
        purpose: text(row, 2).unwrap_or_default(),
        hash: text(row, 3).unwrap_or_default(),
        raw: text(row, 4).unwrap_or_default(),
        gas_limit: int(row, 5).unwrap_or_default(),
        max_fee_per_gas: text(row, 6).unwrap_or_default(),
        max_priority_fee_per_gas: text(row, 7),
        sent_ms: int(row, 8),
    }
}

/// The record's select list; `valid_until` is read as text on both backends.
fn columns(d: Dialect) -> String {
    RECORD
        .iter()
        .map(|(c, _)| match (*c, d) {
            ("valid_until_text", Dialect::Postgres) => "valid_until::text".to_string(),
            ("valid_until_text", Dialect::Sqlite) => "valid_until".to_string(),
            (c, _) => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn kinds<const N: usize>(list: &[(&str, ColumnKind); N]) -> Vec<ColumnKind> {
    list.iter().map(|(_, k)| *k).collect()
}

fn params(d: Dialect, from: usize, count: usize) -> String {
    (from..from + count).map(|n| d.param(n)).collect::<Vec<_>>().join(", ")
}

/// An attempt's values in `ATTEMPT` order.
fn attempt_binds(request_id: &str, a: &Attempt) -> Vec<Bind> {
    vec![
        Bind::text(request_id),
        Bind::int(a.attempt as u64),
        Bind::text(&a.purpose),
        Bind::text(&a.hash),
        Bind::text(&a.raw),
        Bind::int(a.gas_limit),
        Bind::text(&a.max_fee_per_gas),
        Bind::Text(a.max_priority_fee_per_gas.clone()),
        Bind::Int(a.sent_ms.map(|m| m as i64)),
    ]
}

/// The outbox row announcing a request's state (`transaction.<state>`); its id is unique per change.
fn outbox_row(
    id: &str,
    revision: u64,
    state: TxState,
    chain_id: u64,
    key: &str,
    payload: String,
) -> OutboxRow {
    OutboxRow {
        id: format!("{id}:{revision}"),
        kind: format!("transaction.{}", state.as_str()),
        chain_id: chain_id as i64,
        // Transaction messages are their own finality statements: finality filters do not hold them.
        block_number: None,
        log_index: None,
        ordering_key: key.to_string(),
        status: "canonical".into(),
        payload: Some(payload),
    }
}

/// `(p1, p2, ...), (...)`: `rows` rows of `width` parameters for a multi-row `INSERT`; `cell` may wrap a
/// column's parameter (a cast).
fn value_rows(d: Dialect, rows: usize, width: usize, cell: impl Fn(usize, String) -> String) -> String {
    (0..rows)
        .map(|row| {
            let cells = (0..width).map(|column| cell(column, d.param(row * width + column + 1)));
            format!("({})", cells.collect::<Vec<_>>().join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores new attempts in one statement.
async fn insert_attempts(tx: &mut dyn Tx, attempts: &[(&str, &Attempt)]) -> Result<(), StoreError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let rows = value_rows(tx.dialect(), attempts.len(), ATTEMPT.len(), |_, param| param);
    let sql = format!(
        "INSERT INTO tx_attempts ({}) VALUES {rows}",
        ATTEMPT.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    );
    let binds = attempts.iter().flat_map(|(id, a)| attempt_binds(id, a)).collect();
    tx.execute(&sql, binds).await?;
    Ok(())
}

#[async_trait::async_trait]
impl gemgate_domain::ports::Ledger for SqlStore {
    #[tracing::instrument(level = "debug", skip_all, fields(requests = requests.len()))]
    async fn accept(
        &self,
        requests: &[(NewTransaction, u64)],
        payload: &gemgate_domain::ports::TxPayload,
    ) -> Result<Vec<Accepted>, StoreError> {
        self.accept_transactions(requests, payload).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = raw.chain_id, sender = %raw.sender, nonce = raw.nonce))]
    async fn accept_raw(
        &self,
        raw: &RawSubmission,
        payload: &gemgate_domain::ports::TxPayload,
    ) -> Result<Accepted, StoreError> {
        SqlStore::accept_raw(self, raw, payload).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        SqlStore::transaction(self, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn transaction_relaying(&self, digest: &str) -> Result<Option<TxRecord>, StoreError> {
        SqlStore::transaction_relaying(self, digest).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        SqlStore::attempts(self, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = chain_id, sender = ?sender))]
    async fn live_work(&self, chain_id: u64, sender: Option<&str>) -> Result<Vec<LiveTx>, StoreError> {
        self.live_transactions(chain_id, sender).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(chain_id = chain_id, sender = %sender, holder = %holder))]
    async fn take_lease(
        &self,
        chain_id: u64,
        sender: &str,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        self.acquire_lease(chain_id, sender, holder, now_ms, ttl_ms).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(changes = changes.len(), token = lease.map(|l| l.token)))]
    async fn apply_changes(
        &self,
        lease: Option<&Lease>,
        now_ms: u64,
        ttl_ms: u64,
        changes: &[TxChange],
    ) -> Result<usize, StoreError> {
        SqlStore::apply_changes(self, lease, now_ms, ttl_ms, changes).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id, ending = ending.as_str()))]
    async fn request_ending(&self, id: &str, ending: TxState) -> Result<Option<TxRecord>, StoreError> {
        SqlStore::request_ending(self, id, ending).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn request_speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        SqlStore::request_speed_up(self, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, query: &TxListQuery) -> Result<TxPage, StoreError> {
        self.list_transactions(query).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn transaction_states(&self) -> Result<Vec<(String, u64)>, StoreError> {
        SqlStore::transaction_states(self).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn relayed(&self, id: &str) -> Result<Vec<RelayedCall>, StoreError> {
        SqlStore::relayed(self, id).await
    }
}
