//! The outbox as dispatchers read it (the `OutboxStore` port): rows in commit order with their envelopes,
//! each sink's position, dead letters. A canonical chain event's outbox row has no payload of its own: its
//! envelope is the events row with the same id, found by (chain id, block number), the events key's prefix.

use async_trait::async_trait;
use gemgate_domain::ports::{Heads, OutboxEntry, OutboxStore, SinkPosition};
use gemgate_domain::{ChainId, EventStatus, OutboxMessage, StoreError};
use gemgate_projections::{Cell, ColumnKind};

use gemgate_domain::ENVELOPE_SCHEMA;

use crate::conn::{Bind, db_error};
use crate::{Dialect, Pool, SqlStore, Tx};

/// The envelope of the joined event (`e`) as JSON text, built by the database (one value per row instead
/// of fourteen): the same fields as the typed envelope, finality from the joined heads (`h`) as of the
/// read, the address in lower case as the typed envelope serializes it. NULL when the event is gone.
fn envelope_sql(d: Dialect) -> String {
    let (object, embed): (&str, fn(&str) -> String) = match d {
        Dialect::Sqlite => ("json_object", |column| format!("json({column})")),
        Dialect::Postgres => ("json_build_object", |column| column.to_string()),
    };
    let fields = [
        ("id", "e.id".to_string()),
        ("chain_id", "e.chain_id".into()),
        ("block_number", "e.block_number".into()),
        ("block_hash", "e.block_hash".into()),
        ("tx_hash", "e.tx_hash".into()),
        ("tx_index", "e.tx_index".into()),
        ("log_index", "e.log_index".into()),
        ("address", "lower(e.address)".into()),
        ("contract", "e.contract".into()),
        ("event", "e.event".into()),
        ("signature", "e.signature".into()),
        ("args", embed("e.args")),
        ("topics", embed("e.topics")),
        ("data", "e.data".into()),
        ("status", "'canonical'".into()),
        (
            "finality",
            "CASE WHEN e.block_number <= COALESCE(h.finalized, 0) THEN 'finalized' \
             WHEN e.block_number <= COALESCE(h.safe, 0) THEN 'safe' ELSE 'latest' END"
                .into(),
        ),
        ("schema", ENVELOPE_SCHEMA.to_string()),
    ];
    let pairs: Vec<String> = fields.iter().map(|(key, value)| format!("'{key}', {value}")).collect();
    let built = format!("{object}({})", pairs.join(", "));
    let built = if d == Dialect::Postgres { format!("{built}::text") } else { built };
    format!("CASE WHEN e.id IS NULL THEN NULL ELSE {built} END")
}

/// Outbox columns read before the event's.
const OUTBOX_READ: [(&str, ColumnKind); 8] = [
    ("o.seq", ColumnKind::Int),
    ("o.id", ColumnKind::Text),
    ("o.kind", ColumnKind::Text),
    ("o.chain_id", ColumnKind::Int),
    ("o.block_number", ColumnKind::Int),
    ("o.ordering_key", ColumnKind::Text),
    ("o.status", ColumnKind::Text),
    ("o.payload", ColumnKind::Text),
];

fn int(cell: &Cell) -> Option<u64> {
    match cell {
        Cell::Int(i) => Some(*i as u64),
        _ => None,
    }
}

fn text(cell: &Cell) -> String {
    cell.as_text().unwrap_or_default().to_string()
}

fn status(text: &str) -> EventStatus {
    if text == "retracted" { EventStatus::Retracted } else { EventStatus::Canonical }
}

fn invalid(message: String) -> StoreError {
    StoreError::Database { message }
}

/// Sets one column of a sink's row (creating the row if needed); with `only_forward`, a position never
/// moves back (a stale dispatcher cannot undo a newer one's progress).
async fn set_sink_column(
    tx: &mut dyn Tx,
    sink: &str,
    column: &str,
    value: Bind,
    only_forward: bool,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let guard = if only_forward {
        format!(" WHERE sink_positions.{column} < excluded.{column}")
    } else {
        String::new()
    };
    let sql = format!(
        "INSERT INTO sink_positions (sink, {column}) VALUES ({}, {}) \
         ON CONFLICT (sink) DO UPDATE SET {column} = excluded.{column}, updated_at = {}{guard}",
        d.param(1),
        d.param(2),
        d.now()
    );
    tx.execute(&sql, vec![Bind::text(sink), value]).await.map(|_| ())
}

impl SqlStore {
    /// Sets or clears a sink's pause flag (creating its position row if needed).
    pub async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), StoreError> {
        let sink = sink.to_string();
        in_tx!(self, tx => set_sink_column(tx, &sink, "paused", Bind::Bool(Some(paused)), false).await)
    }

    /// Moves a sink's position to `position`, backwards too (`sinks replay`); a running dispatcher notices
    /// at its next round and reads again from there.
    pub async fn rewind_sink(&self, sink: &str, position: u64) -> Result<(), StoreError> {
        let sink = sink.to_string();
        in_tx!(self, tx => set_sink_column(tx, &sink, "position", Bind::int(position), false).await)
    }

    /// The outbox position just before the first row of block `block` or later (of any chain, or of
    /// `chain_id`), or before the first row written at or after `since` (RFC 3339): where a replay starts.
    pub async fn position_before(&self, from: ReplayFrom) -> Result<u64, StoreError> {
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let (filter, binds) = match &from {
                    ReplayFrom::Block { chain_id: Some(chain), block } => (
                        format!("chain_id = {} AND block_number >= {}", d.param(1), d.param(2)),
                        vec![Bind::int(*chain), Bind::int(*block)],
                    ),
                    ReplayFrom::Block { chain_id: None, block } => {
                        (format!("block_number >= {}", d.param(1)), vec![Bind::int(*block)])
                    }
                    ReplayFrom::Time(since) => {
                        let param = match d {
                            crate::Dialect::Sqlite => d.param(1),
                            crate::Dialect::Postgres => format!("{}::timestamptz", d.param(1)),
                        };
                        (format!("created_at >= {param}"), vec![Bind::text(since.clone())])
                    }
                };
                let sql = format!(
                    "SELECT (SELECT MIN(seq) FROM outbox WHERE {filter}), (SELECT MAX(seq) FROM outbox)"
                );
                let rows = tx.fetch(&sql, binds, &[ColumnKind::Int, ColumnKind::Int]).await?;
                let row = rows.first();
                Ok(match (row.and_then(|r| int(&r[0])), row.and_then(|r| int(&r[1]))) {
                    (Some(first), _) => first - 1,
                    // Nothing that late yet: the replay starts at the end.
                    (None, last) => last.unwrap_or(0),
                })
            })
        })
        .await
    }

    /// Sends a sink's dead letters again: they leave the dead-letter table and the sink's position moves
    /// back to just before the oldest of them (later messages are sent again too, with their ids).
    /// Returns how many were requeued.
    pub async fn requeue_dead_letters(&self, sink: &str) -> Result<u64, StoreError> {
        let sink = sink.to_string();
        in_tx!(self, tx => {
            let d = tx.dialect();
            let rows = tx
                .fetch(
                    &format!("SELECT MIN(seq), COUNT(*) FROM dead_letters WHERE sink = {}", d.param(1)),
                    vec![Bind::text(sink.clone())],
                    &[ColumnKind::Int, ColumnKind::Int],
                )
                .await?;
            let (oldest, count) = rows.first().map_or((None, 0), |r| (int(&r[0]), int(&r[1]).unwrap_or(0)));
            if let Some(oldest) = oldest {
                tx.execute(&format!("DELETE FROM dead_letters WHERE sink = {}", d.param(1)), vec![Bind::text(sink.clone())])
                    .await?;
                let current = read_position(tx, sink.clone()).await?.position;
                set_sink_column(tx, &sink, "position", Bind::int(current.min(oldest - 1)), false).await?;
            }
            Ok(count)
        })
    }

    /// Rows in the outbox (all sinks see the same rows) and each listed sink's backlog: rows after its
    /// position, and its dead letters.
    pub async fn sink_backlogs(&self, sinks: &[String]) -> Result<Vec<SinkBacklog>, StoreError> {
        let mut out = Vec::new();
        for sink in sinks {
            let position = self.sink_position(sink).await?;
            let sink_name = sink.clone();
            let counts = self
                .with_tx(move |tx| {
                    Box::pin(async move {
                        let d = tx.dialect();
                        let backlog = tx
                            .fetch(
                                &format!("SELECT COUNT(*), MAX(seq) FROM outbox WHERE seq > {}", d.param(1)),
                                vec![Bind::int(position.position)],
                                &[ColumnKind::Int, ColumnKind::Int],
                            )
                            .await?;
                        let dead = tx
                            .fetch(
                                &format!("SELECT COUNT(*) FROM dead_letters WHERE sink = {}", d.param(1)),
                                vec![Bind::text(sink_name)],
                                &[ColumnKind::Int],
                            )
                            .await?;
                        Ok((
                            backlog.first().and_then(|r| int(&r[0])).unwrap_or(0),
                            dead.first().and_then(|r| int(&r[0])).unwrap_or(0),
                        ))
                    })
                })
                .await?;
            out.push(SinkBacklog {
                sink: sink.clone(),
                position: position.position,
                paused: position.paused,
                backlog: counts.0,
                dead_letters: counts.1,
            });
        }
        Ok(out)
    }
}

impl SqlStore {
    /// Stores a verified inbound webhook once: `false` when `(source, id)` was already stored. A new one
    /// also gets an outbox row (kind `webhook.<source>`, chain 0) in the same transaction, so the sinks
    /// deliver it.
    pub async fn store_inbound_webhook(
        &self,
        source: &str,
        id: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let (source, id, text) = (source.to_string(), id.to_string(), payload.to_string());
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "INSERT INTO inbound_webhooks (source, id, payload) VALUES ({}, {}, {}) ON CONFLICT DO NOTHING",
                d.param(1),
                d.param(2),
                d.param_as(3, ColumnKind::Json)
            );
            let inserted =
                tx.execute(&sql, vec![Bind::text(source.clone()), Bind::text(id.clone()), Bind::text(text.clone())]).await?;
            if inserted == 1 {
                let row = crate::bulk::OutboxRow {
                    id: format!("{source}:{id}"),
                    kind: format!("webhook.{source}"),
                    chain_id: 0,
                    block_number: None,
                    log_index: None,
                    ordering_key: format!("webhook:{source}"),
                    status: "canonical".into(),
                    payload: Some(text.clone()),
                };
                tx.insert_outbox(std::slice::from_ref(&row)).await?;
            }
            Ok(inserted == 1)
        })
    }
}

/// Where `sinks replay` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    Block {
        chain_id: Option<u64>,
        block: u64,
    },
    /// An RFC 3339 time, normalised to `YYYY-MM-DDTHH:MM:SS.mmmZ` (the stored form on SQLite).
    Time(String),
}

/// One sink's delivery state for `gemgate sinks list` and `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkBacklog {
    #[serde(rename = "name")]
    pub sink: String,
    pub position: u64,
    pub paused: bool,
    /// Outbox rows after the sink's position (some may be filtered out or not final yet).
    pub backlog: u64,
    pub dead_letters: u64,
}

async fn read_position(tx: &mut dyn Tx, sink: String) -> Result<SinkPosition, StoreError> {
    let sql = format!("SELECT position, paused FROM sink_positions WHERE sink = {}", tx.dialect().param(1));
    let rows = tx.fetch(&sql, vec![Bind::text(sink)], &[ColumnKind::Int, ColumnKind::Bool]).await?;
    Ok(rows.first().map_or_else(SinkPosition::default, |r| SinkPosition {
        position: int(&r[0]).unwrap_or(0),
        paused: matches!(r[1], Cell::Bool(true)),
    }))
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn sink_position(&self, sink: &str) -> Result<SinkPosition, StoreError> {
        let sink = sink.to_string();
        self.with_tx(move |tx| Box::pin(read_position(tx, sink))).await
    }

    async fn outbox_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    let mut columns: Vec<String> = OUTBOX_READ.iter().map(|(c, k)| d.read(c, *k)).collect();
                    columns.extend(["e.contract".to_string(), "e.event".to_string(), envelope_sql(d)]);
                    let mut kinds: Vec<ColumnKind> = OUTBOX_READ.iter().map(|(_, k)| *k).collect();
                    kinds.extend([ColumnKind::Text; 3]);
                    let sql = format!(
                        "SELECT {} FROM outbox o LEFT JOIN events e ON o.payload IS NULL AND e.chain_id = o.chain_id \
                         AND e.block_number = o.block_number AND e.log_index = o.log_index AND e.id = o.id \
                         LEFT JOIN heads h ON h.chain_id = e.chain_id \
                         WHERE o.seq > {} ORDER BY o.seq LIMIT {}",
                        columns.join(", "),
                        d.param(1),
                        limit.clamp(1, 10_000)
                    );
                    tx.fetch(&sql, vec![Bind::int(after)], &kinds).await
                })
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                let (outbox, event) = row.split_at(OUTBOX_READ.len());
                let seq = int(&outbox[0]).ok_or_else(|| invalid("outbox row without seq".into()))?;
                let id = text(&outbox[1]);
                let (payload, contract, event_name) = match (&outbox[7], &event[2]) {
                    (Cell::Text(payload), _) => {
                        // A retraction (or another message with a body of its own): read its names from it.
                        let parsed: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
                        let name = |key: &str| {
                            parsed.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
                        };
                        (payload.clone(), name("contract"), name("event"))
                    }
                    (_, Cell::Text(envelope)) => (envelope.clone(), text(&event[0]), text(&event[1])),
                    _ => return Ok(OutboxEntry::Reverted { seq, id }),
                };
                Ok(OutboxEntry::Message(OutboxMessage {
                    seq,
                    id,
                    kind: text(&outbox[2]),
                    chain_id: int(&outbox[3]).unwrap_or(0),
                    block_number: int(&outbox[4]),
                    ordering_key: text(&outbox[5]),
                    status: status(&text(&outbox[6])),
                    contract,
                    event: event_name,
                    payload: payload.into(),
                }))
            })
            .collect()
    }

    async fn advance_sink(&self, sink: &str, position: u64) -> Result<(), StoreError> {
        let sink = sink.to_string();
        in_tx!(self, tx => set_sink_column(tx, &sink, "position", Bind::int(position), true).await)
    }

    async fn dead_letter(
        &self,
        sink: &str,
        message: &OutboxMessage,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let binds = vec![
            Bind::text(sink),
            Bind::int(message.seq),
            Bind::text(message.id.clone()),
            Bind::text(message.kind.clone()),
            Bind::int(message.chain_id),
            Bind::Int(message.block_number.map(|n| n as i64)),
            Bind::text(message.ordering_key.clone()),
            Bind::text(if message.status == EventStatus::Retracted { "retracted" } else { "canonical" }),
            Bind::text(message.payload.to_string()),
            Bind::int(u64::from(attempts)),
            Bind::text(error),
        ];
        in_tx!(self, tx => {
            let d = tx.dialect();
            let params: Vec<String> = (1..=11)
                .map(|n| if n == 9 { d.param_as(n, ColumnKind::Json) } else { d.param(n) })
                .collect();
            let sql = format!(
                "INSERT INTO dead_letters (sink, seq, id, kind, chain_id, block_number, ordering_key, status, \
                 payload, attempts, last_error) VALUES ({}) ON CONFLICT (sink, seq) DO NOTHING",
                params.join(", ")
            );
            tx.execute(&sql, binds.clone()).await.map(|_| ())
        })
    }

    async fn chain_heads(&self, chain_id: ChainId) -> Result<Option<Heads>, StoreError> {
        Ok(self.heads().await?.get(&chain_id).copied())
    }
}
