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
use gemgate_domain::{StoreError, TxState};
use gemgate_projections::{Cell, ColumnKind};

use crate::bulk::OutboxRow;
use crate::conn::{Bind, db_error};
use crate::write::Tx;
use crate::{Dialect, Pool, SqlStore};

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
    /// `valid_until` as Unix milliseconds.
    pub valid_until_ms: Option<u64>,
    /// When set, the request is refused unless the sender's balance covers it and everything it has pending.
    pub funds: Option<Funds>,
}

/// What a balance check needs: the sender's balance and the price per gas a pending request may pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funds {
    pub balance: U256,
    pub max_fee_per_gas: u128,
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
    /// `api` (signed by us) or `raw` (signed by the client).
    pub origin: String,
    /// A cancellation or expiry in flight: the state the request takes when its no-op is included.
    pub ending: Option<TxState>,
    /// Bumped by every change; lifecycle writes compare it.
    pub revision: u64,
    pub tx_hash: Option<String>,
    pub block_number: Option<u64>,
    pub block_hash: Option<String>,
    /// The receipt summary as JSON text.
    pub receipt: Option<String>,
    pub valid_until: Option<String>,
    pub valid_until_ms: Option<u64>,
}

impl TxRecord {
    /// A request as accepted (revision 0, nothing sent, nothing included) before its contents are set.
    fn new(chain_id: u64, sender: &str, nonce: u64, origin: &str, state: TxState) -> Self {
        Self {
            id: request_id(chain_id, sender, nonce),
            chain_id,
            signer: String::new(),
            sender: sender.to_string(),
            nonce,
            to: None,
            value: "0".into(),
            data: "0x".into(),
            gas_limit: None,
            speed: "normal".into(),
            state,
            error: None,
            origin: origin.to_string(),
            ending: None,
            revision: 0,
            tx_hash: None,
            block_number: None,
            block_hash: None,
            receipt: None,
            valid_until: None,
            valid_until_ms: None,
        }
    }
}

/// A request's id: one per (chain, sender, nonce).
fn request_id(chain_id: u64, sender: &str, nonce: u64) -> String {
    format!("{chain_id}-{sender}-{nonce}")
}

/// One signed attempt at a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    /// `send` (the request itself) or `noop` (a zero-value self-transfer for a cancel or an expiry).
    pub purpose: String,
    pub hash: String,
    /// The signed EIP-2718 bytes, `0x` hex.
    pub raw: String,
    pub gas_limit: u64,
    /// The fee cap (the gas price on legacy chains), wei per gas, decimal.
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: Option<String>,
    /// First broadcast, Unix milliseconds (the re-pricing clock runs from it; sending the same bytes again
    /// does not move it); `None` if it was stored but never sent.
    pub sent_ms: Option<u64>,
}

/// A request the workers still follow, with its attempts in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTx {
    pub record: TxRecord,
    pub attempts: Vec<Attempt>,
    /// When the request was accepted, Unix milliseconds (for the queued-to-included time).
    pub created_ms: u64,
}

/// What accepting a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new request, with its nonce.
    New(TxRecord),
    /// The idempotency key was seen with the same body: the original request.
    Existing(TxRecord),
    /// The idempotency key was seen with another body (or, for a raw transaction, its nonce is tracked
    /// already with other bytes): the original request's id.
    Conflict { id: String },
    /// The balance does not cover this request and everything pending before it (wei).
    InsufficientFunds { balance: U256, needed: U256 },
}

/// A client-signed transaction to track, decoded and checked by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSubmission {
    pub chain_id: u64,
    pub sender: String,
    pub nonce: u64,
    pub to: Option<String>,
    pub value: String,
    pub data: String,
    pub speed: String,
    pub attempt: Attempt,
}

/// A worker's right to write for one (chain, sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub chain_id: u64,
    pub sender: String,
    pub token: u64,
}

/// A lifecycle change to one request, applied only if its revision is still `revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct TxChange {
    pub id: String,
    pub revision: u64,
    pub from: TxState,
    pub to: TxState,
    /// A new attempt to store (signed bytes, before they are broadcast).
    pub attempt: Option<Attempt>,
    /// An attempt broadcast at this time: (attempt number, Unix milliseconds).
    pub sent: Option<(u32, u64)>,
    /// Where it was included; `Some(None)` clears a previous inclusion (a reorg removed it).
    pub inclusion: Option<Option<Inclusion>>,
    pub gas_limit: Option<u64>,
    pub error: Option<String>,
    /// Sets or clears the pending ending.
    pub ending: Option<Option<TxState>>,
    /// The outbox payload announcing the new state (written only when `to != from`); `revision + 1` is the
    /// revision the payload describes.
    pub payload: Option<String>,
    pub chain_id: u64,
    pub ordering_key: String,
}

impl TxChange {
    /// No change yet to request `id` (at `revision`, in `state`): set what changes on the result.
    pub fn new(id: &str, revision: u64, state: TxState, chain_id: u64, ordering_key: String) -> Self {
        Self {
            id: id.to_string(),
            revision,
            from: state,
            to: state,
            attempt: None,
            sent: None,
            inclusion: None,
            gas_limit: None,
            error: None,
            ending: None,
            payload: None,
            chain_id,
            ordering_key,
        }
    }
}

/// Which requests `list_transactions` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxListQuery {
    pub signer: Option<String>,
    pub chain_id: Option<u64>,
    pub state: Option<TxState>,
    /// Created at or after this time: RFC 3339 in UTC with milliseconds (`2026-12-02T10:00:00.000Z`).
    pub from_time: Option<String>,
    /// The cursor: requests created before this (creation time, id) pair.
    pub before: Option<(String, String)>,
    pub limit: u32,
}

/// A page of requests, each with its creation time, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPage {
    pub items: Vec<(TxRecord, String)>,
    pub next: Option<(String, String)>,
}

/// Where a transaction was included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub tx_hash: String,
    pub block_number: u64,
    pub block_hash: String,
    pub receipt: String,
}

/// The states the workers still act on.
pub const LIVE_STATES: [TxState; 5] =
    [TxState::Queued, TxState::Signed, TxState::Submitted, TxState::Included, TxState::Safe];

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

fn state_text(state: TxState) -> String {
    state.as_str().to_string()
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

async fn find_by_key(tx: &mut dyn Tx, key: &str) -> Result<Option<(TxRecord, String)>, StoreError> {
    Ok(find_by_keys(tx, &[key]).await?.remove(key))
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
        kind: format!("transaction.{}", state_text(state)),
        chain_id: chain_id as i64,
        // Transaction messages are their own finality statements: finality filters do not hold them.
        block_number: None,
        log_index: None,
        ordering_key: key.to_string(),
        status: "canonical".into(),
        payload: Some(payload),
    }
}

/// Orders the messages of one sender's transactions (nonce order is their natural order).
pub fn ordering_key(chain_id: u64, sender: &str) -> String {
    format!("tx:{chain_id}:{sender}")
}

impl SqlStore {
    /// Accepts a request: locks the sender's nonce row (created from `chain_nonce`, the chain's transaction
    /// count for the sender; a ledger behind the chain catches up to it), answers a known idempotency key
    /// with the original request, checks the balance when asked, else allocates the next nonce and records
    /// the request as `queued` with its `transaction.queued` outbox row, all in one database transaction.
    /// `payload` builds the outbox body from the new record.
    pub async fn accept_transaction(
        &self,
        request: &NewTransaction,
        chain_nonce: u64,
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Accepted, StoreError> {
        let mut accepted = self.accept_transactions(&[(request.clone(), chain_nonce)], payload).await?;
        accepted.pop().ok_or_else(|| StoreError::Database { message: "no answer for the request".into() })
    }

    /// Accepts several requests in one database transaction (group commit: one commit, and on Postgres one
    /// turn of the outbox lock, for many requests), each exactly as `accept_transaction` would, in order.
    pub async fn accept_transactions(
        &self,
        requests: &[(NewTransaction, u64)],
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Vec<Accepted>, StoreError> {
        let mut owned = self.begin().await?;
        let answers = accept_all(owned.tx(), requests).await?;
        let outbox: Vec<OutboxRow> = answers
            .iter()
            .filter_map(|answer| match answer {
                Accepted::New(record) => Some(outbox_row(
                    &record.id,
                    0,
                    TxState::Queued,
                    record.chain_id,
                    &ordering_key(record.chain_id, &record.sender),
                    payload(record),
                )),
                _ => None,
            })
            .collect();
        owned.tx().insert_outbox(&outbox).await?;
        owned.commit().await?;
        Ok(answers)
    }

    /// Records a client-signed transaction as `signed` with its one attempt. The same bytes again answer
    /// with the original record; other bytes for a nonce already tracked are a conflict.
    pub async fn accept_raw(
        &self,
        raw: &RawSubmission,
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Accepted, StoreError> {
        let mut owned = self.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let key = format!("raw:{}:{}", raw.chain_id, raw.attempt.hash);
        if let Some((existing, _)) = find_by_key(tx, &key).await? {
            return Ok(Accepted::Existing(existing));
        }
        let id = request_id(raw.chain_id, &raw.sender, raw.nonce);
        let taken = format!("SELECT id FROM tx_requests WHERE id = {}", d.param(1));
        if !tx.fetch(&taken, vec![Bind::text(&id)], &[ColumnKind::Text]).await?.is_empty() {
            return Ok(Accepted::Conflict { id });
        }
        let record = TxRecord {
            to: raw.to.clone(),
            value: raw.value.clone(),
            data: raw.data.clone(),
            gas_limit: Some(raw.attempt.gas_limit),
            speed: raw.speed.clone(),
            ..TxRecord::new(raw.chain_id, &raw.sender, raw.nonce, "raw", TxState::Signed)
        };
        insert_requests(tx, &[(&record, Some(&key), &raw.attempt.hash)]).await?;
        insert_attempts(tx, &[(record.id.as_str(), &raw.attempt)]).await?;
        let row = outbox_row(
            &record.id,
            0,
            TxState::Signed,
            record.chain_id,
            &ordering_key(record.chain_id, &record.sender),
            payload(&record),
        );
        tx.insert_outbox(std::slice::from_ref(&row)).await?;
        owned.commit().await?;
        Ok(Accepted::New(record))
    }

    /// One request by id.
    pub async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!("SELECT {} FROM tx_requests WHERE id = {}", columns(d), d.param(1));
                let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds(&RECORD)).await?;
                rows.first().map(|r| record(r)).transpose()
            })
        })
        .await
    }

    /// A request's attempts in order.
    pub async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_attempts WHERE request_id = {} ORDER BY attempt",
                    ATTEMPT.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
                    d.param(1)
                );
                let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds(&ATTEMPT)).await?;
                Ok(rows.iter().map(|r| attempt(r)).collect())
            })
        })
        .await
    }

    /// A sender's requests on a chain in nonce order (for gap checks and tests).
    pub async fn transactions_of(&self, chain_id: u64, sender: &str) -> Result<Vec<TxRecord>, StoreError> {
        let sender = sender.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_requests WHERE chain_id = {} AND sender = {} ORDER BY nonce",
                    columns(d),
                    d.param(1),
                    d.param(2)
                );
                let rows =
                    tx.fetch(&sql, vec![Bind::int(chain_id), Bind::text(sender)], &kinds(&RECORD)).await?;
                rows.iter().map(|r| record(r)).collect()
            })
        })
        .await
    }

    /// The requests the workers still follow on a chain, in nonce order with their attempts: one sender's
    /// (`Some`), or every client-signed one (`None`).
    pub async fn live_transactions(
        &self,
        chain_id: u64,
        sender: Option<&str>,
    ) -> Result<Vec<LiveTx>, StoreError> {
        let sender = sender.map(str::to_string);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let live = LIVE_STATES.iter().map(|s| format!("'{}'", state_text(*s))).collect::<Vec<_>>().join(", ");
                let (filter, binds) = match &sender {
                    Some(sender) => (
                        format!("chain_id = {} AND sender = {} AND origin = 'api'", d.param(1), d.param(2)),
                        vec![Bind::int(chain_id), Bind::text(sender)],
                    ),
                    None => (format!("chain_id = {} AND origin = 'raw'", d.param(1)), vec![Bind::int(chain_id)]),
                };
                let where_clause = format!("{filter} AND state IN ({live})");
                let created_ms = match d {
                    Dialect::Postgres => "(extract(epoch FROM created_at) * 1000)::bigint",
                    Dialect::Sqlite => "CAST(ROUND((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)",
                };
                let sql = format!(
                    "SELECT {}, {created_ms} FROM tx_requests WHERE {where_clause} ORDER BY sender, nonce",
                    columns(d)
                );
                let mut record_kinds = kinds(&RECORD);
                record_kinds.push(ColumnKind::Int);
                let records = tx.fetch(&sql, binds.clone(), &record_kinds).await?;
                let sql = format!(
                    "SELECT {} FROM tx_attempts WHERE request_id IN (SELECT id FROM tx_requests WHERE {where_clause}) \
                     ORDER BY request_id, attempt",
                    ATTEMPT.iter().map(|(c, _)| format!("tx_attempts.{c}")).collect::<Vec<_>>().join(", ")
                );
                let attempt_rows = tx.fetch(&sql, binds, &kinds(&ATTEMPT)).await?;
                let mut by_id: std::collections::HashMap<String, Vec<Attempt>> = std::collections::HashMap::new();
                for row in &attempt_rows {
                    by_id.entry(text(row, 0).unwrap_or_default()).or_default().push(attempt(row));
                }
                records
                    .iter()
                    .map(|row| {
                        let record = record(row)?;
                        let attempts = by_id.remove(&record.id).unwrap_or_default();
                        Ok(LiveTx { record, attempts, created_ms: int(row, RECORD.len()).unwrap_or_default() })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Takes (or renews) the lease on a sender for `ttl_ms`: granted when it is free, expired or already
    /// ours (`holder`); a new holder gets a higher fencing token. `None` while another holder's lease runs.
    pub async fn acquire_lease(
        &self,
        chain_id: u64,
        sender: &str,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        let (sender, holder) = (sender.to_string(), holder.to_string());
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "INSERT INTO tx_leases (chain_id, sender, holder, token, expires_ms) VALUES ({}, {}, {}, 1, {}) \
                 ON CONFLICT (chain_id, sender) DO UPDATE SET \
                   token = CASE WHEN tx_leases.holder = excluded.holder THEN tx_leases.token ELSE tx_leases.token + 1 END, \
                   holder = excluded.holder, expires_ms = excluded.expires_ms \
                 WHERE tx_leases.holder = excluded.holder OR tx_leases.expires_ms < {} \
                 RETURNING token",
                d.param(1), d.param(2), d.param(3), d.param(4), d.param(5)
            );
            let binds = vec![
                Bind::int(chain_id),
                Bind::text(sender.clone()),
                Bind::text(holder.clone()),
                Bind::int(now_ms + ttl_ms),
                Bind::int(now_ms),
            ];
            let rows = tx.fetch(&sql, binds, &[ColumnKind::Int]).await?;
            Ok(rows.first().and_then(|r| int(r, 0)).map(|token| Lease { chain_id, sender: sender.clone(), token }))
        })
    }

    /// Applies lifecycle changes in one database transaction. With a lease, the transaction first renews it
    /// (until `now_ms + ttl_ms`) and fails with `Fenced` when another worker took it since, so nothing a
    /// stale worker decided commits. A change whose revision moved meanwhile is skipped. Returns how many
    /// changes applied.
    pub async fn apply_changes(
        &self,
        lease: Option<&Lease>,
        now_ms: u64,
        ttl_ms: u64,
        changes: &[TxChange],
    ) -> Result<usize, StoreError> {
        in_tx!(self, tx => apply(tx, lease, now_ms + ttl_ms, changes).await)
    }

    /// Asks for a request to end as `cancelled` (or `expired`): recorded when it can still be stopped (not
    /// included or terminal); the worker then sends the no-op. Returns the record as it is now.
    pub async fn request_ending(&self, id: &str, ending: TxState) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "UPDATE tx_requests SET ending = {} WHERE id = {} AND origin = 'api' AND ending IS NULL \
                 AND state IN ('queued', 'signed', 'submitted')",
                d.param(1),
                d.param(2)
            );
            tx.execute(&sql, vec![Bind::text(state_text(ending)), Bind::text(id.clone())]).await?;
            let sql = format!("SELECT {} FROM tx_requests WHERE id = {}", columns(d), d.param(1));
            let rows = tx.fetch(&sql, vec![Bind::text(id.clone())], &kinds(&RECORD)).await?;
            rows.first().map(|r| record(r)).transpose()
        })
    }

    /// Marks a request for an immediate fee bump (speed-up): its last attempt counts as sent long ago.
    pub async fn request_speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "UPDATE tx_attempts SET sent_ms = 0 WHERE request_id = {} AND sent_ms IS NOT NULL \
                 AND request_id IN (SELECT id FROM tx_requests WHERE id = {} AND origin = 'api' AND state IN ('signed', 'submitted'))",
                d.param(1),
                d.param(2)
            );
            tx.execute(&sql, vec![Bind::text(id.clone()), Bind::text(id.clone())]).await?;
            let sql = format!("SELECT {} FROM tx_requests WHERE id = {}", columns(d), d.param(1));
            let rows = tx.fetch(&sql, vec![Bind::text(id.clone())], &kinds(&RECORD)).await?;
            rows.first().map(|r| record(r)).transpose()
        })
    }

    /// Requests newest first, filtered, a page at a time (`GET /v1/transactions`). Each comes with its
    /// creation time (RFC 3339, UTC); `next` is the cursor of the following page when there may be one.
    pub async fn list_transactions(&self, query: &TxListQuery) -> Result<TxPage, StoreError> {
        let query = query.clone();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let mut filters = Vec::new();
                let mut binds = Vec::new();
                let bind = |b: Bind, binds: &mut Vec<Bind>| {
                    binds.push(b);
                    binds.len()
                };
                let time = |n: usize| match d {
                    Dialect::Postgres => format!("${n}::timestamptz"),
                    Dialect::Sqlite => d.param(n),
                };
                if let Some(signer) = &query.signer {
                    filters
                        .push(format!("signer = {}", d.param(bind(Bind::text(signer.clone()), &mut binds))));
                }
                if let Some(chain_id) = query.chain_id {
                    filters.push(format!("chain_id = {}", d.param(bind(Bind::int(chain_id), &mut binds))));
                }
                if let Some(state) = query.state {
                    filters
                        .push(format!("state = {}", d.param(bind(Bind::text(state.as_str()), &mut binds))));
                }
                if let Some(from) = &query.from_time {
                    filters
                        .push(format!("created_at >= {}", time(bind(Bind::text(from.clone()), &mut binds))));
                }
                if let Some((created, id)) = &query.before {
                    let t = bind(Bind::text(created.clone()), &mut binds);
                    let i = bind(Bind::text(id.clone()), &mut binds);
                    filters.push(format!("(created_at, id) < ({}, {})", time(t), d.param(i)));
                }
                let created = match d {
                    // Microseconds, so the cursor compares equal to the stored value.
                    Dialect::Postgres => {
                        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                    }
                    Dialect::Sqlite => "created_at",
                };
                let sql = format!(
                    "SELECT {}, {created} FROM tx_requests {} ORDER BY created_at DESC, id DESC LIMIT {}",
                    columns(d),
                    if filters.is_empty() {
                        String::new()
                    } else {
                        format!("WHERE {}", filters.join(" AND "))
                    },
                    query.limit + 1
                );
                let mut kinds = kinds(&RECORD);
                kinds.push(ColumnKind::Text);
                let rows = tx.fetch(&sql, binds, &kinds).await?;
                let more = rows.len() > query.limit as usize;
                let mut items = Vec::new();
                for row in rows.iter().take(query.limit as usize) {
                    items.push((record(row)?, text(row, RECORD.len()).unwrap_or_default()));
                }
                let next = if more {
                    items.last().map(|(r, created)| (created.clone(), r.id.clone()))
                } else {
                    None
                };
                Ok(TxPage { items, next })
            })
        })
        .await
    }

    /// The number of requests per state (tests, status).
    pub async fn transaction_states(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch(
                        "SELECT state, COUNT(*) FROM tx_requests GROUP BY state ORDER BY state",
                        Vec::new(),
                        &[ColumnKind::Text, ColumnKind::Int],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| (text(r, 0).unwrap_or_default(), int(r, 1).unwrap_or_default()))
                    .collect())
            })
        })
        .await
    }
}

/// Requests accepted together (see `SqlStore::accept_transactions`), in a few statements whatever their
/// number: each sender's nonce row is locked once (senders in a fixed order, so two accepting processes
/// cannot deadlock) and caught up to the chain, known idempotency keys are read in one query, nonces are
/// handed out in request order, and the new requests are inserted many rows a statement.
async fn accept_all(
    tx: &mut dyn Tx,
    requests: &[(NewTransaction, u64)],
) -> Result<Vec<Accepted>, StoreError> {
    let d = tx.dialect();
    let p = |n| d.param(n);
    let greatest = match d {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "GREATEST",
    };
    // Per sender: (the nonce its row held once locked, the next nonce to hand out); chain counts first.
    let mut next: BTreeMap<(u64, String), (u64, u64)> = BTreeMap::new();
    for (request, chain_nonce) in requests {
        let (seen, _) = next.entry((request.chain_id, request.sender.clone())).or_default();
        *seen = (*seen).max(*chain_nonce);
    }
    let lock = format!(
        "INSERT INTO tx_nonces (chain_id, sender, next_nonce) VALUES ({}, {}, {}) \
         ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = {greatest}(tx_nonces.next_nonce, excluded.next_nonce) \
         RETURNING next_nonce",
        p(1),
        p(2),
        p(3)
    );
    for ((chain_id, sender), (locked, nonce)) in next.iter_mut() {
        let binds = vec![Bind::int(*chain_id), Bind::text(sender), Bind::int(*locked)];
        *locked = match tx.fetch(&lock, binds, &[ColumnKind::Int]).await?.first().map(|r| &r[0]) {
            Some(Cell::Int(n)) => *n as u64,
            _ => return Err(StoreError::Database { message: "no nonce row".into() }),
        };
        *nonce = *locked;
    }

    // Known keys (no nonce spent on them: the upserts above only caught the rows up to the chain), and
    // the keys of this batch as they are accepted.
    let keys: Vec<&str> = requests.iter().filter_map(|(r, _)| r.idempotency_key.as_deref()).collect();
    let mut known: HashMap<String, (TxRecord, String)> = find_by_keys(tx, &keys).await?;

    let fee_cost = |funds: &Funds, value: &str, gas: Option<u64>| {
        let value = value.parse::<U256>().unwrap_or_default();
        value.saturating_add(
            U256::from(funds.max_fee_per_gas).saturating_mul(U256::from(gas.unwrap_or_default())),
        )
    };
    // The cost of what each sender has pending, read once and kept up to date.
    let mut pending: HashMap<(u64, String), U256> = HashMap::new();
    let mut answers = Vec::with_capacity(requests.len());
    for (request, _) in requests {
        if let Some(key) = &request.idempotency_key
            && let Some((existing, body)) = known.get(key)
        {
            answers.push(if *body == request.body_sha256 {
                Accepted::Existing(existing.clone())
            } else {
                Accepted::Conflict { id: existing.id.clone() }
            });
            continue;
        }
        let sender_key = (request.chain_id, request.sender.clone());
        if let Some(funds) = &request.funds {
            let already = match pending.get(&sender_key) {
                Some(cost) => *cost,
                None => {
                    let sql = format!(
                        "SELECT value, gas_limit FROM tx_requests WHERE chain_id = {} AND sender = {} AND state IN ({PENDING_STATES})",
                        p(1),
                        p(2)
                    );
                    let binds = vec![Bind::int(request.chain_id), Bind::text(&request.sender)];
                    let rows = tx.fetch(&sql, binds, &[ColumnKind::Text, ColumnKind::Int]).await?;
                    rows.iter()
                        .map(|r| fee_cost(funds, r[0].as_text().unwrap_or("0"), int(r, 1)))
                        .fold(U256::ZERO, U256::saturating_add)
                }
            };
            let needed = already.saturating_add(fee_cost(funds, &request.value, request.gas_limit));
            if needed > funds.balance {
                pending.insert(sender_key, already);
                answers.push(Accepted::InsufficientFunds { balance: funds.balance, needed });
                continue;
            }
            pending.insert(sender_key.clone(), needed);
        }
        let (_, nonce) = next.get_mut(&sender_key).expect("every sender's row was locked above");
        let record = TxRecord {
            signer: request.signer.clone(),
            to: request.to.clone(),
            value: request.value.clone(),
            data: request.data.clone(),
            gas_limit: request.gas_limit,
            speed: request.speed.clone(),
            valid_until: request.valid_until.clone(),
            valid_until_ms: request.valid_until_ms,
            ..TxRecord::new(request.chain_id, &request.sender, *nonce, "api", TxState::Queued)
        };
        *nonce += 1;
        if let Some(key) = &request.idempotency_key {
            known.insert(key.clone(), (record.clone(), request.body_sha256.clone()));
        }
        answers.push(Accepted::New(record));
    }

    let advance =
        format!("UPDATE tx_nonces SET next_nonce = {} WHERE chain_id = {} AND sender = {}", p(1), p(2), p(3));
    for ((chain_id, sender), (locked, nonce)) in &next {
        if nonce != locked {
            tx.execute(&advance, vec![Bind::int(*nonce), Bind::int(*chain_id), Bind::text(sender)]).await?;
        }
    }
    let new: Vec<(&TxRecord, Option<&str>, &str)> = requests
        .iter()
        .zip(&answers)
        .filter_map(|((request, _), answer)| match answer {
            Accepted::New(record) => {
                Some((record, request.idempotency_key.as_deref(), request.body_sha256.as_str()))
            }
            _ => None,
        })
        .collect();
    for chunk in new.chunks(INSERT_CHUNK) {
        insert_requests(tx, chunk).await?;
    }
    Ok(answers)
}

/// New requests a statement: 16 values each, well under SQLite's and Postgres's parameter limits.
const INSERT_CHUNK: usize = 100;

/// The requests holding any of `keys`, with their body hashes, by key.
async fn find_by_keys(
    tx: &mut dyn Tx,
    keys: &[&str],
) -> Result<HashMap<String, (TxRecord, String)>, StoreError> {
    let mut found = HashMap::new();
    let mut kinds = kinds(&RECORD);
    kinds.push(ColumnKind::Text);
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT {}, idempotency_key FROM tx_requests WHERE idempotency_key IN ({})",
            columns(tx.dialect()),
            params(tx.dialect(), 1, chunk.len())
        );
        let rows = tx.fetch(&sql, chunk.iter().map(|k| Bind::text(*k)).collect(), &kinds).await?;
        for row in rows {
            let key = text(&row, RECORD.len()).unwrap_or_default().to_string();
            found.insert(key, (record(&row)?, text(&row, RECORD.len() - 1).unwrap_or_default().to_string()));
        }
    }
    Ok(found)
}

/// Inserts new requests in one statement, each with its idempotency key and body hash.
async fn insert_requests(
    tx: &mut dyn Tx,
    rows: &[(&TxRecord, Option<&str>, &str)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    // `valid_until` (the 12th value) is a timestamp on Postgres.
    let values = value_rows(d, rows.len(), 16, |column, param| match (d, column) {
        (Dialect::Postgres, 11) => format!("{param}::timestamptz"),
        _ => param,
    });
    let sql = format!(
        "INSERT INTO tx_requests (id, idempotency_key, body_sha256, chain_id, signer, sender, nonce, to_address, \
         value, data, gas_limit, valid_until, speed, state, origin, valid_until_ms) VALUES {values}"
    );
    let binds = rows
        .iter()
        .flat_map(|(r, idempotency_key, body_sha256)| {
            [
                Bind::text(&r.id),
                Bind::Text(idempotency_key.map(str::to_string)),
                Bind::text(*body_sha256),
                Bind::int(r.chain_id),
                Bind::text(&r.signer),
                Bind::text(&r.sender),
                Bind::int(r.nonce),
                Bind::Text(r.to.clone()),
                Bind::text(&r.value),
                Bind::text(&r.data),
                Bind::Int(r.gas_limit.map(|g| g as i64)),
                Bind::Text(r.valid_until.clone()),
                Bind::text(&r.speed),
                Bind::text(state_text(r.state)),
                Bind::text(&r.origin),
                Bind::Int(r.valid_until_ms.map(|m| m as i64)),
            ]
        })
        .collect();
    tx.execute(&sql, binds).await?;
    Ok(())
}

async fn apply(
    tx: &mut dyn Tx,
    lease: Option<&Lease>,
    expires_ms: u64,
    changes: &[TxChange],
) -> Result<usize, StoreError> {
    let d = tx.dialect();
    if let Some(lease) = lease {
        let sql = format!(
            "UPDATE tx_leases SET expires_ms = {} WHERE chain_id = {} AND sender = {} AND token = {}",
            d.param(1),
            d.param(2),
            d.param(3),
            d.param(4)
        );
        let renewed = tx
            .execute(
                &sql,
                vec![
                    Bind::int(expires_ms),
                    Bind::int(lease.chain_id),
                    Bind::text(&lease.sender),
                    Bind::int(lease.token),
                ],
            )
            .await?;
        if renewed != 1 {
            let sql = format!(
                "SELECT token FROM tx_leases WHERE chain_id = {} AND sender = {}",
                d.param(1),
                d.param(2)
            );
            let rows = tx
                .fetch(&sql, vec![Bind::int(lease.chain_id), Bind::text(&lease.sender)], &[ColumnKind::Int])
                .await?;
            return Err(StoreError::Fenced {
                resource: format!("transactions of {} on chain {}", lease.sender, lease.chain_id),
                current: rows.first().and_then(|r| int(r, 0)).unwrap_or_default(),
            });
        }
    }
    for change in changes {
        if !change.from.can_become(change.to) && change.from != change.to {
            return Err(StoreError::Database {
                message: format!(
                    "transaction {}: {:?} -> {:?} is not a lifecycle edge",
                    change.id, change.from, change.to
                ),
            });
        }
    }
    let mut applied = 0;
    let mut outbox = Vec::new();
    for chunk in chunks_of_distinct(changes, CHANGE_CHUNK) {
        // Each change applies only if the request is still at the revision it was read at.
        let ids = update_requests(tx, &chunk).await?;
        let done: Vec<&TxChange> = chunk.into_iter().filter(|c| ids.contains(&c.id)).collect();
        applied += done.len();
        let attempts: Vec<(&str, &Attempt)> =
            done.iter().filter_map(|c| c.attempt.as_ref().map(|a| (c.id.as_str(), a))).collect();
        insert_attempts(tx, &attempts).await?;
        let sent: Vec<(&str, u32, u64)> =
            done.iter().filter_map(|c| c.sent.map(|(n, ms)| (c.id.as_str(), n, ms))).collect();
        mark_sent(tx, &sent).await?;
        for change in done.iter().filter(|c| c.to != c.from) {
            if let Some(payload) = &change.payload {
                outbox.push(outbox_row(
                    &change.id,
                    change.revision + 1,
                    change.to,
                    change.chain_id,
                    &change.ordering_key,
                    payload.clone(),
                ));
            }
        }
    }
    tx.insert_outbox(&outbox).await?;
    Ok(applied)
}

/// Changes written per statement (12 parameters each: well below either database's limit).
const CHANGE_CHUNK: usize = 200;

/// `changes` in order, cut into chunks of at most `size` in which no request appears twice (one bulk
/// statement must not update a row twice).
fn chunks_of_distinct(changes: &[TxChange], size: usize) -> Vec<Vec<&TxChange>> {
    let mut chunks: Vec<Vec<&TxChange>> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for change in changes {
        let full = chunks.last().is_none_or(|c| c.len() >= size);
        if full || !ids.insert(change.id.as_str()) {
            chunks.push(Vec::new());
            ids.clear();
            ids.insert(change.id.as_str());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(change);
        }
    }
    chunks
}

/// `(SELECT column1 AS a, column2 AS b ... FROM (VALUES (...), ...) AS vals)`: rows of parameters as a
/// table both databases read (Postgres needs each parameter's type spelled out).
fn values_table(d: Dialect, names: &[(&str, ColumnKind)], rows: usize) -> String {
    let cast = |n: usize, kind: ColumnKind| match (d, kind) {
        (Dialect::Postgres, ColumnKind::Int) => format!("${n}::bigint"),
        (Dialect::Postgres, _) => format!("${n}::text"),
        (Dialect::Sqlite, _) => d.param(n),
    };
    let width = names.len();
    let values = (0..rows)
        .map(|row| {
            let cells = names.iter().enumerate().map(|(i, (_, kind))| cast(row * width + i + 1, *kind));
            format!("({})", cells.collect::<Vec<_>>().join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("column{} AS {name}", i + 1))
        .collect::<Vec<_>>();
    format!("(SELECT {} FROM (VALUES {values}) AS vals)", columns.join(", "))
}

/// Updates the requests of `chunk` that are still at their revision; returns the ids updated.
async fn update_requests(
    tx: &mut dyn Tx,
    chunk: &[&TxChange],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let d = tx.dialect();
    const COLUMNS: [(&str, ColumnKind); 12] = [
        ("id", ColumnKind::Text),
        ("revision", ColumnKind::Int),
        ("state", ColumnKind::Text),
        ("set_inclusion", ColumnKind::Int),
        ("tx_hash", ColumnKind::Text),
        ("block_number", ColumnKind::Int),
        ("block_hash", ColumnKind::Text),
        ("receipt", ColumnKind::Text),
        ("gas_limit", ColumnKind::Int),
        ("error", ColumnKind::Text),
        ("set_ending", ColumnKind::Int),
        ("ending", ColumnKind::Text),
    ];
    let mut binds = Vec::with_capacity(chunk.len() * COLUMNS.len());
    for change in chunk {
        let inclusion = change.inclusion.as_ref().and_then(|i| i.as_ref());
        binds.extend([
            Bind::text(&change.id),
            Bind::int(change.revision),
            Bind::text(state_text(change.to)),
            Bind::int(u64::from(change.inclusion.is_some())),
            Bind::Text(inclusion.map(|i| i.tx_hash.clone())),
            Bind::Int(inclusion.map(|i| i.block_number as i64)),
            Bind::Text(inclusion.map(|i| i.block_hash.clone())),
            Bind::Text(inclusion.map(|i| i.receipt.clone())),
            Bind::Int(change.gas_limit.map(|g| g as i64)),
            Bind::Text(change.error.clone()),
            Bind::int(u64::from(change.ending.is_some())),
            Bind::Text(change.ending.flatten().map(state_text)),
        ]);
    }
    let keep_unless = |flag: &str, column: &str| {
        format!("{column} = CASE WHEN v.{flag} = 1 THEN v.{column} ELSE tx_requests.{column} END")
    };
    let sql = format!(
        "UPDATE tx_requests SET state = v.state, revision = tx_requests.revision + 1, {}, {}, {}, {}, \
         gas_limit = COALESCE(v.gas_limit, tx_requests.gas_limit), error = COALESCE(v.error, tx_requests.error), \
         {}, updated_at = {} \
         FROM {} AS v WHERE tx_requests.id = v.id AND tx_requests.revision = v.revision RETURNING tx_requests.id",
        keep_unless("set_inclusion", "tx_hash"),
        keep_unless("set_inclusion", "block_number"),
        keep_unless("set_inclusion", "block_hash"),
        keep_unless("set_inclusion", "receipt"),
        keep_unless("set_ending", "ending"),
        match d {
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Dialect::Postgres => "now()",
        },
        values_table(d, &COLUMNS, chunk.len())
    );
    let rows = tx.fetch(&sql, binds, &[ColumnKind::Text]).await?;
    Ok(rows.iter().filter_map(|r| text(r, 0)).collect())
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

/// Records when attempts were first sent, in one statement.
async fn mark_sent(tx: &mut dyn Tx, sent: &[(&str, u32, u64)]) -> Result<(), StoreError> {
    if sent.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    const COLUMNS: [(&str, ColumnKind); 3] =
        [("id", ColumnKind::Text), ("attempt", ColumnKind::Int), ("sent_ms", ColumnKind::Int)];
    let binds = sent
        .iter()
        .flat_map(|(id, attempt, ms)| [Bind::text(*id), Bind::int(u64::from(*attempt)), Bind::int(*ms)])
        .collect();
    let sql = format!(
        "UPDATE tx_attempts SET sent_ms = v.sent_ms FROM {} AS v \
         WHERE tx_attempts.request_id = v.id AND tx_attempts.attempt = v.attempt",
        values_table(d, &COLUMNS, sent.len())
    );
    tx.execute(&sql, binds).await?;
    Ok(())
}
