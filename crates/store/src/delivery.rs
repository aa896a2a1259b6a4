//! The outbox as dispatchers read it (the `OutboxStore` port): rows in commit order with their envelopes,
//! each sink's position, dead letters. A canonical chain event's outbox row has no payload of its own: its
//! envelope is the events row with the same id, found by (chain id, block number), the events key's prefix.

use async_trait::async_trait;
use gemgate_domain::cluster::Fence;
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
        ("args", "e.args".into()),
        ("topics", "e.topics".into()),
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
    let built = match d {
        // One format() per row (a single pass, where `||` would copy the growing text at every step):
        // json_quote escapes each scalar (NULL becomes null), and the stored args and topics (JSON text
        // gemgate wrote) go in as they are, so SQLite parses no JSON.
        Dialect::Sqlite => {
            let (mut template, mut values) = (Vec::new(), Vec::new());
            for (key, value) in &fields {
                template.push(format!("\"{key}\":%s"));
                values.push(match *key {
                    "args" | "topics" => format!("ifnull({value}, 'null')"),
                    _ => format!("json_quote({value})"),
                });
            }
            format!("format('{{{}}}', {})", template.join(","), values.join(", "))
        }
        Dialect::Postgres => {
            let pairs: Vec<String> = fields.iter().map(|(key, value)| format!("'{key}', {value}")).collect();
            format!("json_build_object({})::text", pairs.join(", "))
        }
    };
    format!("CASE WHEN e.id IS NULL THEN NULL ELSE {built} END")
}

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

pub use gemgate_domain::reads::{ReplayFrom, SinkBacklog};

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
        let limit = limit.clamp(1, 10_000);
        match self.dialect() {
            Dialect::Sqlite => self.outbox_page_sqlite(after, limit).await,
            Dialect::Postgres => self.outbox_rows(after, limit).await,
        }
    }

    async fn advance_sink(&self, sink: &str, position: u64, fence: Option<&Fence>) -> Result<(), StoreError> {
        let sink = sink.to_string();
        in_tx!(self, tx => {
            crate::leases::check(tx, fence).await?;
            set_sink_column(tx, &sink, "position", Bind::int(position), true).await
        })
    }

    async fn dead_letter(
        &self,
        sink: &str,
        message: &OutboxMessage,
        attempts: u32,
        error: &str,
        fence: Option<&Fence>,
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
            crate::leases::check(tx, fence).await?;
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

/// The outbox rows after `after` joined with their events (see `envelope_sql`).
fn outbox_query(d: Dialect, select: &str, limit: u32) -> String {
    format!(
        "SELECT {select} FROM outbox o LEFT JOIN events e ON o.payload IS NULL AND e.chain_id = o.chain_id \
         AND e.block_number = o.block_number AND e.log_index = o.log_index AND e.id = o.id \
         LEFT JOIN heads h ON h.chain_id = e.chain_id \
         WHERE o.seq > {} ORDER BY o.seq LIMIT {limit}",
        d.param(1)
    )
}

/// One outbox row as read: the outbox columns, then the event's contract, event name and envelope.
#[derive(serde::Deserialize)]
struct PageRow<'a>(
    u64,
    String,
    String,
    u64,
    Option<u64>,
    String,
    String,
    #[serde(borrow)] Option<&'a serde_json::value::RawValue>,
    Option<String>,
    Option<String>,
    #[serde(borrow)] Option<&'a serde_json::value::RawValue>,
);

/// One outbox row's values, however they were read.
struct RowParts<'a> {
    seq: u64,
    id: String,
    kind: String,
    chain_id: u64,
    block_number: Option<u64>,
    ordering_key: String,
    status: String,
    /// The row's own JSON body (retractions), if any.
    payload: Option<&'a str>,
    contract: Option<String>,
    event: Option<String>,
    /// The joined event's envelope; None when the event is gone.
    envelope: Option<&'a str>,
}

impl<'a> From<PageRow<'a>> for RowParts<'a> {
    fn from(r: PageRow<'a>) -> Self {
        RowParts {
            seq: r.0,
            id: r.1,
            kind: r.2,
            chain_id: r.3,
            block_number: r.4,
            ordering_key: r.5,
            status: r.6,
            payload: r.7.map(|v| v.get()),
            contract: r.8,
            event: r.9,
            envelope: r.10.map(|v| v.get()),
        }
    }
}

impl RowParts<'_> {
    fn into_entry(self) -> OutboxEntry {
        let (payload, contract, event) = match (self.payload, self.envelope) {
            (Some(payload), _) => {
                // A retraction (or another message with a body of its own): its names come from the body.
                let parsed: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
                let name =
                    |key: &str| parsed.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                (payload, name("contract"), name("event"))
            }
            (None, Some(envelope)) => {
                (envelope, self.contract.unwrap_or_default(), self.event.unwrap_or_default())
            }
            (None, None) => return OutboxEntry::Reverted { seq: self.seq, id: self.id },
        };
        OutboxEntry::Message(OutboxMessage {
            seq: self.seq,
            id: self.id,
            kind: self.kind,
            chain_id: self.chain_id,
            block_number: self.block_number,
            ordering_key: self.ordering_key,
            status: status(&self.status),
            contract,
            event,
            payload: payload.into(),
        })
    }
}

impl SqlStore {
    /// SQLite: the whole page as one JSON array built in SQL (`[[seq, id, ...], ...]`, the
    /// stored JSON bodies embedded as they are). One value crosses from SQLite's thread instead of one row
    /// per message, and nothing is decoded column by column; Rust parses the array once.
    async fn outbox_page_sqlite(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let d = Dialect::Sqlite;
        let fields = [
            "o.seq".to_string(),
            "json_quote(o.id)".into(),
            "json_quote(o.kind)".into(),
            "o.chain_id".into(),
            "json_quote(o.block_number)".into(),
            "json_quote(o.ordering_key)".into(),
            "json_quote(o.status)".into(),
            "ifnull(o.payload, 'null')".into(),
            "json_quote(e.contract)".into(),
            "json_quote(e.event)".into(),
            format!("ifnull({}, 'null')", envelope_sql(d)),
        ];
        let template = vec!["%s"; fields.len()].join(",");
        let row = format!("format('[{template}]', {}) AS r, o.seq AS seq", fields.join(", "));
        let sql = format!(
            "SELECT '[' || ifnull(group_concat(r, ',' ORDER BY seq), '') || ']' FROM ({})",
            outbox_query(d, &row, limit)
        );
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move { tx.fetch(&sql, vec![Bind::int(after)], &[ColumnKind::Text]).await })
            })
            .await?;
        let page = rows.first().map(|r| text(&r[0])).unwrap_or_else(|| "[]".into());
        let parsed: Vec<PageRow<'_>> =
            serde_json::from_str(&page).map_err(|e| invalid(format!("reading an outbox page: {e}")))?;
        Ok(parsed.into_iter().map(|row| RowParts::from(row).into_entry()).collect())
    }

    /// Postgres: the rows with their envelopes, column by column.
    async fn outbox_rows(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    // The row's own body is JSONB: read as text, like the envelope.
                    let columns = format!(
                        "o.seq, o.id, o.kind, o.chain_id, o.block_number, o.ordering_key, o.status, \
                         o.payload::text, e.contract, e.event, {}",
                        envelope_sql(d)
                    );
                    let mut kinds = [ColumnKind::Text; 11];
                    for i in [0, 3, 4] {
                        kinds[i] = ColumnKind::Int;
                    }
                    tx.fetch(&outbox_query(d, &columns, limit), vec![Bind::int(after)], &kinds).await
                })
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                let cell = |i: usize| match &row[i] {
                    Cell::Text(t) => Some(t.clone()),
                    _ => None,
                };
                let seq = int(&row[0]).ok_or_else(|| invalid("outbox row without seq".into()))?;
                let (payload, envelope) = (cell(7), cell(10));
                Ok(RowParts {
                    seq,
                    id: text(&row[1]),
                    kind: text(&row[2]),
                    chain_id: int(&row[3]).unwrap_or(0),
                    block_number: int(&row[4]),
                    ordering_key: text(&row[5]),
                    status: text(&row[6]),
                    payload: payload.as_deref(),
                    contract: cell(8),
                    event: cell(9),
                    envelope: envelope.as_deref(),
                }
                .into_entry())
            })
            .collect()
    }
}
