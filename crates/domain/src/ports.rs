//! Ports: one trait per outside capability. Engines (indexer, dispatcher, transaction manager, call proxy)
//! are written against these traits; adapters implement them (`chain` for `ChainSource`, `Broadcaster` and
//! `ViewCaller`, `store` for `Store`, `OutboxStore`, `Ledger`, `RelayQuotas`, `ReadModel` and `DeliveryControl`, `sinks`
//! for `Sink`, `txm` for `Signer`). Nothing here knows about alloy providers, sqlx or brokers.

use alloy_primitives::{Address, B256, Bytes, U256};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::block::Header;
use crate::broadcast::{CallRequest, FeeQuote, ReceiptSummary, SendFailure};
use crate::calls::{BlockSelector, CallOutput, PinnedBlock};
use crate::cluster::{Fence, LeaseKey, LeaseRecord};
use crate::ledger::{
    Accepted, Attempt, Lease, LiveTx, NewTransaction, RawSubmission, TxChange, TxListQuery, TxPage, TxRecord,
};
use crate::reads::{ChainStatus, EventPage, EventQuery, ReplayFrom, SinkBacklog};
use crate::relay::{QuotaCharge, RelayedCall};
use crate::state::{Drift, DriftRecord, ProjectedRow, RunStats, StateRow, StateRun};
use crate::{
    BlockRef, ChainError, ChainEvent, ChainId, FinalityLevel, OutboxMessage, SignerError, SinkError,
    StoreError, TxState,
};

/// A raw log as the node returned it, before decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawLog {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub tx_index: u64,
    pub log_index: u64,
}

/// Which logs to fetch: an inclusive block range or a single block by hash, from some addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogQuery {
    Range {
        from: u64,
        to: u64,
        addresses: Vec<Address>,
    },
    /// At the tip: fetching by hash guarantees the logs belong to the block we checked.
    Block {
        hash: B256,
        addresses: Vec<Address>,
    },
}

/// Reading a chain: heads by finality tag, blocks by number, logs.
#[async_trait]
pub trait ChainSource: Send + Sync {
    fn chain_id(&self) -> ChainId;
    /// The head at a finality level; `None` when the node has no such tag (then depth rules apply).
    async fn head(&self, level: FinalityLevel) -> Result<Option<BlockRef>, ChainError>;
    /// A block's header by number; `None` when the node does not have it.
    async fn header(&self, number: u64) -> Result<Option<Header>, ChainError>;
    /// A block's header by hash; `None` when the node does not have it.
    async fn header_by_hash(&self, hash: B256) -> Result<Option<Header>, ChainError>;
    /// A block by number; `None` when the node does not have it.
    async fn block(&self, number: u64) -> Result<Option<BlockRef>, ChainError> {
        Ok(self.header(number).await?.map(|h| h.block))
    }
    async fn logs(&self, query: &LogQuery) -> Result<Vec<RawLog>, ChainError>;
    /// The sender of a transaction; `None` when the node does not know it.
    async fn transaction_sender(&self, tx_hash: B256) -> Result<Option<Address>, ChainError>;
}

/// Everything one committed batch moves forward, written in one database transaction: the events, the
/// projection changes they cause, an outbox row per event (plus `outbox`), the reorg window and the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub chain_id: ChainId,
    /// The blocks of the batch that are above the finalized head, for the reorg window.
    pub blocks: Vec<BlockRef>,
    /// Events in chain order (block, then log index).
    pub events: Vec<ChainEvent>,
    /// Outbox messages other than the events' own (which the store writes for every event).
    pub outbox: Vec<OutboxMessage>,
    /// The cursor this batch extends (`None` for a chain's first batch). The store refuses the batch if
    /// the stored cursor is not this one, so two writers can never interleave.
    pub previous: Option<BlockRef>,
    /// The new chain cursor: the last block of the batch.
    pub cursor: BlockRef,
    /// Changes in blocks above this number are journaled so a reorg can undo them; below it they are final.
    pub finalized: u64,
    /// The chain's indexer lease this batch is written under: the store refuses it once another process
    /// has taken the lease (`None`: no lease, one indexer by configuration).
    pub fence: Option<Fence>,
}

/// A chain's heads as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Heads {
    pub latest: u64,
    pub safe: u64,
    pub finalized: u64,
}

impl Heads {
    /// The finality level of a block under these heads.
    pub fn level_of(&self, block: u64) -> FinalityLevel {
        if block <= self.finalized {
            FinalityLevel::Finalized
        } else if block <= self.safe {
            FinalityLevel::Safe
        } else {
            FinalityLevel::Latest
        }
    }
}

/// What a revert removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevertSummary {
    pub events_removed: u64,
    pub retractions_written: u64,
}

/// The database as the engines see it.
#[async_trait]
pub trait Store: Send + Sync {
    /// The last committed block of a chain.
    async fn cursor(&self, chain_id: ChainId) -> Result<Option<BlockRef>, StoreError>;
    /// The stored blocks above the finalized head (the reorg window), in ascending order.
    async fn window(&self, chain_id: ChainId) -> Result<Vec<BlockRef>, StoreError>;
    /// Commit a batch atomically: events, projection changes, outbox rows and cursor, or nothing.
    async fn commit_batch(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Undo everything above `ancestor` in one transaction and move the cursor back to it (refused, like a
    /// batch, once `fence` is no longer the chain's lease).
    async fn revert_to(
        &self,
        chain_id: ChainId,
        ancestor: &BlockRef,
        fence: Option<&Fence>,
    ) -> Result<RevertSummary, StoreError>;
    /// Records the chain's heads and forgets what finality made irreversible (window rows and journal
    /// entries at or below the finalized head).
    async fn record_heads(
        &self,
        chain_id: ChainId,
        heads: &Heads,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError>;
}

/// Leases shared by the processes on one database (see `cluster`). Times are Unix milliseconds from the
/// caller's clock: the processes' clocks must agree (NTP) to well within a lease's time to live.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease for `ttl_ms`, or renews it when `holder` has it already: granted when it is free,
    /// expired or ours; a new holder gets a higher token. `None` while another holder's lease runs.
    async fn acquire(
        &self,
        key: &LeaseKey,
        holder: &str,
        detail: Option<&str>,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, StoreError>;
    /// Extends a held lease to `now_ms + ttl_ms`; `false` when it was taken by another holder since.
    async fn renew(&self, fence: &Fence, now_ms: u64, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Gives a held lease up at once (a standby may take it without waiting for it to expire).
    async fn release(&self, fence: &Fence, now_ms: u64) -> Result<(), StoreError>;
    /// Every lease, live or expired, by role and name.
    async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError>;
}

/// One write made through the API: who made it, what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Position in the log (0 for an entry not yet recorded).
    pub id: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The API key's name, `jwt:<subject>` or `parse:<user id>`.
    pub caller: String,
    pub method: String,
    /// The request path (no query string).
    pub path: String,
    /// The HTTP status the write was answered with.
    pub status: u16,
}

/// The audit log of API writes (`audit_log`).
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Newest first: up to `limit` entries with ids below `before` (all when `None`).
    async fn audit_entries(&self, before: Option<u64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A destination for outbox messages (a broker, a webhook endpoint).
#[async_trait]
pub trait Sink: Send + Sync {
    /// The configured sink name.
    fn name(&self) -> &str;
    /// Deliver messages in the given order and return once the destination confirmed them. On failure,
    /// `delivered` says how many leading messages were confirmed; later ones may or may not have arrived
    /// (they are sent again, with the same ids).
    async fn publish(&self, messages: &[OutboxMessage]) -> Result<(), SinkFailure>;
}

/// A publish that did not confirm every message.
#[derive(Debug)]
pub struct SinkFailure {
    pub delivered: usize,
    pub error: SinkError,
}

/// One outbox row as a dispatcher reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxEntry {
    /// A message to deliver.
    Message(OutboxMessage),
    /// A chain event a reorg removed before this read: there is nothing to deliver, and a sink that never
    /// received it needs no retraction either.
    Reverted { seq: u64, id: String },
}

impl OutboxEntry {
    pub fn seq(&self) -> u64 {
        match self {
            OutboxEntry::Message(message) => message.seq,
            OutboxEntry::Reverted { seq, .. } => *seq,
        }
    }
}

/// A sink's delivery state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkPosition {
    /// Every outbox row up to this seq is delivered or dead-lettered.
    pub position: u64,
    pub paused: bool,
}

/// The outbox as dispatchers see it: rows in commit order, each sink's position, dead letters.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// The sink's stored position (zero for a new sink).
    async fn sink_position(&self, sink: &str) -> Result<SinkPosition, StoreError>;
    /// Outbox rows after `after`, in order, at most `limit`; canonical chain events carry their current
    /// envelope (finality as of now).
    async fn outbox_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Moves the sink's position forward (never back: a stale writer cannot undo a newer one's progress;
    /// refused once `fence` is no longer the sink's lease).
    async fn advance_sink(&self, sink: &str, position: u64, fence: Option<&Fence>) -> Result<(), StoreError>;
    /// Parks a message the sink refused `attempts` times, with the last error.
    async fn dead_letter(
        &self,
        sink: &str,
        message: &OutboxMessage,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError>;
    /// A chain's heads as last recorded by its indexer.
    async fn chain_heads(&self, chain_id: ChainId) -> Result<Option<Heads>, StoreError>;
}

/// A transaction to sign: its EIP-2718 unsigned encoding and the hash a key signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    pub chain_id: ChainId,
    pub unsigned: Bytes,
    pub signing_hash: B256,
    /// Lets a remote signer deduplicate a retried request (DFNS `externalId`).
    pub idempotency_key: String,
}

/// The result of asking a signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOutcome {
    /// The signature over `signing_hash`. The manager attaches it to the transaction and checks that it
    /// recovers to the signer's address before anything is stored or sent.
    Signed { signature: alloy_primitives::Signature },
    /// A policy holds the request for approval; ask again later with the same idempotency key.
    Pending { request_id: String },
}

/// Something that signs transactions for one address.
#[async_trait]
pub trait Signer: Send + Sync {
    fn address(&self) -> Address;
    async fn sign_transaction(&self, request: &SignRequest) -> Result<SignOutcome, SignerError>;
    /// The signature is computed in this process from the key this signer holds (a local key or a
    /// decrypted keystore), so it cannot be for another key or payload. Signatures from anywhere else
    /// (DFNS, KMS) are recovered and checked against `address` before they are used.
    fn signs_in_process(&self) -> bool {
        false
    }
}

/// How the transaction manager turns a record into the body of its `transaction.<state>` outbox message.
pub type TxPayload = dyn Fn(&TxRecord) -> String + Send + Sync;

/// The transaction ledger as the transaction manager and the API see it: requests accepted with their
/// nonce, the live work of a worker, changes applied under a lease, reads. Every write that announces a
/// state writes its outbox message in the same database transaction.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Accepts requests in one database transaction, each with the chain's transaction count for its
    /// sender (a ledger behind the chain catches up to it): a nonce each, idempotency keys answered with
    /// the original request, balances checked where asked. One answer per request, in order.
    async fn accept(
        &self,
        requests: &[(NewTransaction, u64)],
        payload: &TxPayload,
    ) -> Result<Vec<Accepted>, StoreError>;
    /// Records a client-signed transaction with its one attempt.
    async fn accept_raw(&self, raw: &RawSubmission, payload: &TxPayload) -> Result<Accepted, StoreError>;
    /// One request by id.
    async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError>;
    /// The transaction relaying the ERC-2771 request with EIP-712 digest `digest`.
    async fn transaction_relaying(&self, digest: &str) -> Result<Option<TxRecord>, StoreError>;
    /// A request's attempts in order.
    async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError>;
    /// The requests the workers still follow on a chain, in nonce order with their attempts: one sender's
    /// (`Some`), or every client-signed one (`None`).
    async fn live_work(&self, chain_id: ChainId, sender: Option<&str>) -> Result<Vec<LiveTx>, StoreError>;
    /// Takes or renews the lease on a sender; `None` while another holder's lease runs.
    async fn take_lease(
        &self,
        chain_id: ChainId,
        sender: &str,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError>;
    /// Applies lifecycle changes in one database transaction, under `lease` when given (renewed, and
    /// `Fenced` when another worker took it). Returns how many applied (a moved revision is skipped).
    async fn apply_changes(
        &self,
        lease: Option<&Lease>,
        now_ms: u64,
        ttl_ms: u64,
        changes: &[TxChange],
    ) -> Result<usize, StoreError>;
    /// Asks for a request to end as `ending` (cancelled, expired) while it can still be stopped.
    async fn request_ending(&self, id: &str, ending: TxState) -> Result<Option<TxRecord>, StoreError>;
    /// Marks a request for an immediate fee bump.
    async fn request_speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError>;
    /// Requests newest first, a page at a time.
    async fn list(&self, query: &TxListQuery) -> Result<TxPage, StoreError>;
    /// The number of requests per state.
    async fn transaction_states(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// The ERC-2771 requests a transaction relays, in the order it carries them.
    async fn relayed(&self, id: &str) -> Result<Vec<RelayedCall>, StoreError>;
}

/// The relayer's quotas, kept in the database so every API replica counts against the same totals.
#[async_trait]
pub trait RelayQuotas: Send + Sync {
    /// Charges every quota or none, atomically with respect to concurrent charges: `Ok(None)` when all
    /// were charged, `Ok(Some(i))` when charge `i` would pass its limit (nothing charged).
    async fn charge(&self, charges: &[QuotaCharge]) -> Result<Option<usize>, StoreError>;
    /// Gives charges back (a request that turned out to be a repeat of one already accepted).
    async fn refund(&self, charges: &[QuotaCharge]) -> Result<(), StoreError>;
}

/// A chain as the transaction manager uses it: account reads, fee quotes, gas estimates, broadcast, receipts
/// and block hashes. A node's refusal of a transaction comes back typed (`SendFailure::Refused`), apart from
/// transport trouble, because the two call for different actions.
#[async_trait]
pub trait Broadcaster: Send + Sync + std::fmt::Debug {
    fn chain_id(&self) -> ChainId;
    /// The sender's transaction count: mined (`pending = false`) or including the node's pool.
    async fn nonce(&self, address: Address, pending: bool) -> Result<u64, ChainError>;
    async fn balance(&self, address: Address) -> Result<U256, ChainError>;
    /// The fee market over the last `blocks` blocks, with the priority fees paid at `percentiles`.
    async fn fees(&self, blocks: u64, percentiles: &[f64]) -> Result<FeeQuote, ChainError>;
    /// `eth_estimateGas`; a revert is `Refused(Reverted)` with the node's reason.
    async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, SendFailure>;
    /// Why `call` reverts when run at the state after `block` (`None`: it does not revert there).
    async fn revert_reason(&self, call: &CallRequest, block: u64) -> Option<String>;
    /// Broadcasts signed bytes: the hash, or the node's typed refusal.
    async fn send_raw(&self, raw: &Bytes) -> Result<B256, SendFailure>;
    async fn receipt(&self, hash: B256) -> Result<Option<ReceiptSummary>, ChainError>;
    /// Every receipt of block `number` in one call; `None` when the node does not have the block. A node
    /// without the method answers with an `Rpc` error.
    async fn block_receipts(&self, number: u64) -> Result<Option<Vec<ReceiptSummary>>, ChainError>;
    /// Whether the node knows the transaction (pending or mined).
    async fn knows(&self, hash: B256) -> Result<bool, ChainError>;
    /// The head at a finality level as (number, hash); `None` when the node has no such tag.
    async fn head(&self, level: FinalityLevel) -> Result<Option<(u64, B256)>, ChainError>;
    /// The hash of the canonical block `number`; `None` when the node has no such block.
    async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError>;
}

/// View calls against one chain: a block named by tag, number or hash pinned to its number and hash, then
/// calls run at exactly that block (by hash, EIP-1898), so every answer says which state it read.
#[async_trait]
pub trait ViewCaller: Send + Sync + std::fmt::Debug {
    fn chain_id(&self) -> ChainId;
    /// The block `at` names; `None` when the node has no such block (or tag).
    async fn pin(&self, at: BlockSelector) -> Result<Option<PinnedBlock>, ChainError>;
    /// `eth_call` at block `at`: the returned bytes, or the revert data. Transport trouble and the node's
    /// other refusals are errors.
    async fn call_at(&self, call: &CallRequest, at: B256) -> Result<CallOutput, ChainError>;
    /// Whether `address` holds code at block `at` (a contract is deployed there).
    async fn has_code(&self, address: Address, at: B256) -> Result<bool, ChainError>;
}

/// Where contract-state snapshot runs write: each snapshot's table, filled through a staging table and
/// replaced whole in one transaction when the run completes, and the record of every run.
#[async_trait]
pub trait StateSnapshots: Send + Sync {
    /// Starts a run at `block`: the table and an empty staging table exist; an earlier run of `name` left
    /// running (its process died) is recorded abandoned. Returns the run's id.
    async fn begin_state_run(
        &self,
        name: &str,
        table: &str,
        chain_id: ChainId,
        block: PinnedBlock,
    ) -> Result<u64, StoreError>;
    /// Stages rows of the run (a repeated key replaces the earlier row).
    async fn stage_state_rows(
        &self,
        table: &str,
        block: PinnedBlock,
        rows: &[StateRow],
    ) -> Result<(), StoreError>;
    /// Replaces the table's rows with the staged ones and records the run complete, in one transaction.
    async fn finish_state_run(&self, run: u64, table: &str, stats: RunStats) -> Result<(), StoreError>;
    /// Records the run abandoned and empties its staging table; the table keeps the last complete run.
    async fn abandon_state_run(
        &self,
        run: u64,
        table: &str,
        stats: RunStats,
        error: &str,
    ) -> Result<(), StoreError>;
    /// The values of a projection table's `column` in the rows of contract `address` (when the table has a
    /// `contract` column), in key order after the row key `after`: (row key, value as JSON).
    async fn projection_values(
        &self,
        table: &str,
        column: &str,
        address: Address,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    /// Runs, newest first; of one snapshot when `name` is given.
    async fn state_runs(&self, name: Option<&str>, limit: u32) -> Result<Vec<StateRun>, StoreError>;
}

/// Stored events re-fetched from the chain and re-decoded (`gemgate replay --from-chain`, e.g. after an ABI
/// was added), a block range per transaction, with how far it got kept for a resume.
#[async_trait]
pub trait EventRefresh: Send + Sync {
    /// Where an interrupted refetch of the chain got to: (next block, last block).
    async fn refetch_position(&self, chain_id: ChainId) -> Result<Option<(u64, u64)>, StoreError>;
    /// Puts `events` (every log of the configured contracts in blocks `from..=to`, decoded now) in place of
    /// the stored ones, and records `to + 1` as the next block of a refetch ending at `last`. A stored event
    /// at the same position with another id (a different block) refuses the range: the chain has moved
    /// under the cursor, and `gemgate index` must follow it first. Returns (re-decoded, new) counts.
    async fn refresh_events(
        &self,
        chain_id: ChainId,
        from: u64,
        to: u64,
        last: u64,
        events: &[ChainEvent],
    ) -> Result<(u64, u64), StoreError>;
    async fn finish_refetch(&self, chain_id: ChainId) -> Result<(), StoreError>;
}

/// Hybrid reconciliation: projection rows read for comparison with the contracts' views, and drift
/// recorded (and healed) with its outbox message.
#[async_trait]
pub trait DriftStore: Send + Sync {
    /// Rows of projection `table` of contract `address` (when it has a `contract` column) in key order after
    /// `after`: each with `argument_column`'s value, the `columns`' values and `updated_block`.
    async fn projected_rows(
        &self,
        table: &str,
        argument_column: &str,
        columns: &[String],
        address: Address,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<ProjectedRow>, StoreError>;
    /// Records each drift whose row is unchanged since it was read (same value, last changed at or below
    /// the drift's block) with a `drift.detected` outbox message, healing the row when `drift.healed`
    /// (journaled), all in one transaction with the chain's cursor locked. Returns the drifts recorded.
    async fn record_drift(&self, drifts: &[Drift]) -> Result<Vec<Drift>, StoreError>;
    /// Recorded drift, newest first, before id `before`.
    async fn drift(&self, before: Option<u64>, limit: u32) -> Result<Vec<DriftRecord>, StoreError>;
}

/// What the API reads: the chains' heads and progress, events, projection rows.
#[async_trait]
pub trait ReadModel: Send + Sync {
    /// Each chain's heads as last recorded.
    async fn heads(&self) -> Result<std::collections::BTreeMap<ChainId, Heads>, StoreError>;
    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;
    async fn chain_status(&self) -> Result<Vec<ChainStatus>, StoreError>;
    /// The names of the projection tables kept.
    fn projection_tables(&self) -> Vec<&'static str>;
    /// Rows of projection `table` as JSON objects (U256 values as decimal strings) ordered by key: the one
    /// with `key`, or up to `limit` after `after`. `None` when no such table is kept.
    async fn projection_rows(
        &self,
        table: &str,
        key: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Option<Vec<serde_json::Value>>, StoreError>;
}

/// What operators change about delivery (pause, replay, requeue) and see of it (backlogs), and the
/// inbound webhooks that enter the outbox.
#[async_trait]
pub trait DeliveryControl: Send + Sync {
    /// Each named sink's delivery state, in the order given.
    async fn sink_backlogs(&self, sinks: &[String]) -> Result<Vec<SinkBacklog>, StoreError>;
    async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), StoreError>;
    /// The outbox position just before where a replay from `from` starts.
    async fn position_before(&self, from: ReplayFrom) -> Result<u64, StoreError>;
    /// Moves a sink's position, backwards too.
    async fn rewind_sink(&self, sink: &str, position: u64) -> Result<(), StoreError>;
    /// Sends a sink's dead letters again; returns how many.
    async fn requeue_dead_letters(&self, sink: &str) -> Result<u64, StoreError>;
    /// Stores a verified inbound webhook once, with its outbox row; `false` when it was stored before.
    async fn store_inbound_webhook(
        &self,
        source: &str,
        id: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, StoreError>;
}
