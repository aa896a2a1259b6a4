//! The write path, once for both backends: commit a batch (events, outbox rows, projection changes with
//! their undo journal, window, cursor) and revert to a common ancestor, each inside one transaction.

use async_trait::async_trait;
use gemgate_domain::ports::{Batch, Heads, RevertSummary};
use gemgate_domain::{BlockRef, ChainEvent, ChainId, StoreError};
use gemgate_projections::{
    ColumnKind, JournalEntry, ProjectionError, ProjectionSet, Row, RowLoader, Rows, TableDef,
};

use crate::bulk::{BulkWrite, EventRow, OutboxRow};
use crate::conn::{Bind, Conn};

/// A transaction that can do everything the write path needs.
pub trait Tx: Conn + BulkWrite {}
impl<T: Conn + BulkWrite> Tx for T {}

fn projection_error(error: ProjectionError) -> StoreError {
    match error {
        ProjectionError::Load(e) => e,
        other => StoreError::Database { message: other.to_string() },
    }
}

/// Loads projection rows through the transaction, from the tables themselves or (a rebuild) from their
/// shadows: the table's name with `suffix`.
pub(crate) struct Loader<'t> {
    pub(crate) tx: &'t mut dyn Tx,
    pub(crate) suffix: &'static str,
}

#[async_trait]
impl RowLoader for Loader<'_> {
    async fn load(&mut self, table: &'static TableDef, key: &str) -> Result<Option<Row>, StoreError> {
        let name = format!("{}{}", table.name, self.suffix);
        let sql = self.tx.dialect().select_row_from(&name, table);
        let kinds: Vec<ColumnKind> = table.columns.iter().map(|c| c.kind).collect();
        let mut rows = self.tx.fetch(&sql, vec![Bind::text(key)], &kinds).await?;
        Ok(rows.pop().map(|cells| table.columns.iter().map(|c| c.name.to_string()).zip(cells).collect()))
    }
}

/// Events as stored. A batch's events mostly come from a few contracts, so an address is checksummed (a
/// keccak) once per run of equal addresses rather than once per event.
pub(crate) fn event_rows(events: &[ChainEvent]) -> Vec<EventRow> {
    let mut checksummed: Option<(alloy_primitives::Address, String)> = None;
    events
        .iter()
        .map(|event| {
            let address = match &checksummed {
                Some((raw, text)) if *raw == event.address => text.clone(),
                _ => {
                    let text = event.address.to_checksum(None);
                    checksummed = Some((event.address, text.clone()));
                    text
                }
            };
            event_row(event, address)
        })
        .collect()
}

fn event_row(event: &ChainEvent, address: String) -> EventRow {
    EventRow {
        id: event.id.to_string(),
        chain_id: event.chain_id as i64,
        block_number: event.block_number as i64,
        block_hash: event.block_hash.to_string(),
        tx_hash: event.tx_hash.to_string(),
        tx_index: event.tx_index as i64,
        log_index: event.log_index as i64,
        address,
        contract: event.contract.clone(),
        event: event.event.clone(),
        signature: event.signature.to_string(),
        args: (!event.args.is_null()).then(|| event.args.to_string()),
        topics: serde_json::to_string(&event.topics).unwrap_or_else(|_| "[]".into()),
        data: event.data.to_string(),
        tx_from: event.tx_from.map(|a| a.to_checksum(None)),
    }
}

pub(crate) fn event_outbox_row(event: &ChainEvent) -> OutboxRow {
    OutboxRow {
        id: event.id.to_string(),
        kind: "event".into(),
        chain_id: event.chain_id as i64,
        block_number: Some(event.block_number as i64),
        log_index: Some(event.log_index as i64),
        ordering_key: event.ordering_key(),
        status: "canonical".into(),
        payload: None,
    }
}

pub async fn stored_cursor(tx: &mut dyn Tx, chain_id: ChainId) -> Result<Option<BlockRef>, StoreError> {
    read_cursor(tx, chain_id, "").await
}

/// The stored cursor, locked until the transaction ends: every writer that moves a chain's state (a batch,
/// a revert, a rebuild's swap) takes this lock first, so they run one after another. (SQLite's writers are
/// serialised by its write lock already.)
pub(crate) async fn locked_cursor(
    tx: &mut dyn Tx,
    chain_id: ChainId,
) -> Result<Option<BlockRef>, StoreError> {
    let lock = match tx.dialect() {
        crate::Dialect::Postgres => " FOR UPDATE",
        crate::Dialect::Sqlite => "",
    };
    read_cursor(tx, chain_id, lock).await
}

async fn read_cursor(tx: &mut dyn Tx, chain_id: ChainId, lock: &str) -> Result<Option<BlockRef>, StoreError> {
    let p1 = tx.dialect().param(1);
    let rows = tx
        .fetch(
            &format!("SELECT block_number, block_hash, parent_hash FROM cursors WHERE chain_id = {p1}{lock}"),
            vec![Bind::int(chain_id)],
            &[ColumnKind::Int, ColumnKind::Text, ColumnKind::Text],
        )
        .await?;
    rows.first().map(|r| crate::cells::block_from_cells(r)).transpose()
}

/// Commits a batch. Refuses it if the stored cursor is not the one the batch extends.
pub async fn commit_batch(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    batch: &Batch,
) -> Result<(), StoreError> {
    let current = locked_cursor(tx, batch.chain_id).await?;
    if current.map(|c| (c.number, c.hash)) != batch.previous.map(|c| (c.number, c.hash)) {
        return Err(StoreError::Fenced {
            resource: format!("cursor of chain {}", batch.chain_id),
            current: current.map_or(0, |c| c.number),
        });
    }

    let events = event_rows(&batch.events);
    tx.insert_events(&events).await?;
    let mut outbox: Vec<OutboxRow> = batch.events.iter().map(event_outbox_row).collect();
    outbox.extend(batch.outbox.iter().map(|m| OutboxRow {
        id: m.id.clone(),
        kind: m.kind.clone(),
        chain_id: m.chain_id as i64,
        block_number: m.block_number.map(|n| n as i64),
        log_index: None,
        ordering_key: m.ordering_key.clone(),
        status: m.status.as_str().into(),
        payload: Some(m.payload.to_string()),
    }));
    tx.insert_outbox(&outbox).await?;

    let (journal, writes) = {
        let mut loader = Loader { tx: &mut *tx, suffix: "" };
        let mut rows = Rows::new(&mut loader, batch.finalized);
        projections.apply_all(&batch.events, &mut rows).await.map_err(projection_error)?;
        rows.finish()
    };
    write_journal(tx, "journal", batch.chain_id, &journal).await?;
    for write in &writes {
        write_row(tx, write.table, &write.key, write.row.as_ref()).await?;
    }
    let d = tx.dialect();

    for block in &batch.blocks {
        tx.execute(
            &format!(
                "INSERT INTO blocks (chain_id, number, hash, parent_hash) VALUES ({}, {}, {}, {}) \
                 ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash",
                d.param(1),
                d.param(2),
                d.param(3),
                d.param(4)
            ),
            vec![
                Bind::int(batch.chain_id),
                Bind::int(block.number),
                Bind::text(block.hash.to_string()),
                Bind::text(block.parent_hash.to_string()),
            ],
        )
        .await?;
    }
    set_cursor(tx, batch.chain_id, &batch.cursor).await
}

/// Appends before images to a journal table (`journal`, or a rebuild's `replay_journal`).
pub(crate) async fn write_journal(
    tx: &mut dyn Tx,
    journal_table: &str,
    chain_id: ChainId,
    journal: &[JournalEntry],
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let sql = format!(
        "INSERT INTO {journal_table} (chain_id, block_number, table_name, row_key, before) VALUES ({}, {}, {}, {}, {})",
        d.param(1),
        d.param(2),
        d.param(3),
        d.param(4),
        d.param_as(5, ColumnKind::Json)
    );
    for entry in journal {
        tx.execute(
            &sql,
            vec![
                Bind::int(chain_id),
                Bind::int(entry.block_number),
                Bind::text(entry.table.clone()),
                Bind::text(entry.key.clone()),
                Bind::Text(entry.before.as_ref().map(|row| serde_json::to_string(row).unwrap_or_default())),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn set_cursor(tx: &mut dyn Tx, chain_id: ChainId, cursor: &BlockRef) -> Result<(), StoreError> {
    let d = tx.dialect();
    let now = d.now();
    tx.execute(
        &format!(
            "INSERT INTO cursors (chain_id, block_number, block_hash, parent_hash) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number, \
             block_hash = excluded.block_hash, parent_hash = excluded.parent_hash, updated_at = {now}",
            d.param(1),
            d.param(2),
            d.param(3),
            d.param(4)
        ),
        vec![
            Bind::int(chain_id),
            Bind::int(cursor.number),
            Bind::text(cursor.hash.to_string()),
            Bind::text(cursor.parent_hash.to_string()),
        ],
    )
    .await?;
    Ok(())
}

/// Writes a projection row's final state: upsert, or delete when `row` is `None`.
pub async fn write_row(
    tx: &mut dyn Tx,
    table: &TableDef,
    key: &str,
    row: Option<&Row>,
) -> Result<(), StoreError> {
    write_row_into(tx, table.name, table, key, row).await
}

/// Writes a row of `table` into the table named `name` (the table itself, or a rebuild's shadow of it).
pub(crate) async fn write_row_into(
    tx: &mut dyn Tx,
    name: &str,
    table: &TableDef,
    key: &str,
    row: Option<&Row>,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    match row {
        Some(row) => {
            let mut binds = vec![Bind::text(key)];
            binds.extend(table.columns.iter().map(|c| Bind::cell(row.get(c.name), c.kind)));
            tx.execute(&d.upsert_into(name, table), binds).await?;
        }
        None => {
            tx.execute(&format!("DELETE FROM {name} WHERE key = {}", d.param(1)), vec![Bind::text(key)])
                .await?;
        }
    }
    Ok(())
}

/// Reverts a chain to `ancestor`: projection changes undone from the journal (newest first), a retraction
/// outbox row for every removed event, events, window rows and journal above the ancestor deleted, cursor
/// moved back. Refuses to go below the recorded finalized head.
pub async fn revert_to(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    chain_id: ChainId,
    ancestor: &BlockRef,
) -> Result<RevertSummary, StoreError> {
    locked_cursor(tx, chain_id).await?;
    let d = tx.dialect();
    let (p1, p2) = (d.param(1), d.param(2));
    let heads = tx
        .fetch(
            &format!("SELECT finalized FROM heads WHERE chain_id = {p1}"),
            vec![Bind::int(chain_id)],
            &[ColumnKind::Int],
        )
        .await?;
    if let Some(gemgate_projections::Cell::Int(finalized)) = heads.first().and_then(|r| r.first())
        && (ancestor.number as i64) < *finalized
    {
        {
            return Err(StoreError::Database {
                message: format!(
                    "refusing to revert chain {chain_id} to block {} below its finalized head {finalized}",
                    ancestor.number
                ),
            });
        }
    }
    let scope = || vec![Bind::int(chain_id), Bind::int(ancestor.number)];

    undo_journal(tx, projections, "journal", "", chain_id, ancestor.number).await?;

    // Retract every removed event: the same envelope and id, with status `retracted`.
    let columns: Vec<String> = crate::cells::EVENT_COLUMNS.iter().map(|(c, k)| d.read(c, *k)).collect();
    let kinds: Vec<ColumnKind> = crate::cells::EVENT_COLUMNS.iter().map(|(_, k)| *k).collect();
    let removed_rows = tx
        .fetch(
            &format!(
                "SELECT {} FROM events WHERE chain_id = {p1} AND block_number > {p2} ORDER BY block_number, log_index",
                columns.join(", ")
            ),
            scope(),
            &kinds,
        )
        .await?;
    let no_heads = std::collections::BTreeMap::new();
    let mut retractions = Vec::new();
    for cells in removed_rows.iter().rev() {
        let mut event = crate::cells::event_from_cells(cells, &no_heads)?;
        event.status = gemgate_domain::EventStatus::Retracted;
        retractions.push(OutboxRow {
            id: event.id.to_string(),
            kind: "event".into(),
            chain_id: chain_id as i64,
            block_number: Some(event.block_number as i64),
            log_index: None,
            ordering_key: event.ordering_key(),
            status: "retracted".into(),
            payload: Some(serde_json::to_string(&event).unwrap_or_else(|_| "{}".into())),
        });
    }
    // Newest first: the undo order, so a consumer that applies them in turn walks its state back.
    tx.insert_outbox(&retractions).await?;

    let removed = tx
        .execute(&format!("DELETE FROM events WHERE chain_id = {p1} AND block_number > {p2}"), scope())
        .await?;
    tx.execute(&format!("DELETE FROM blocks WHERE chain_id = {p1} AND number > {p2}"), scope()).await?;
    set_cursor(tx, chain_id, ancestor).await?;
    Ok(RevertSummary { events_removed: removed, retractions_written: retractions.len() as u64 })
}

/// Restores the before images a journal holds for blocks above `above`, newest first, into the tables
/// (named with `suffix`: a rebuild undoes its shadows), and removes those entries.
pub(crate) async fn undo_journal(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    journal_table: &str,
    suffix: &str,
    chain_id: ChainId,
    above: u64,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let (p1, p2) = (d.param(1), d.param(2));
    let scope = || vec![Bind::int(chain_id), Bind::int(above)];
    let journal = tx
        .fetch(
            &format!(
                "SELECT block_number, table_name, row_key, {} FROM {journal_table} \
                 WHERE chain_id = {p1} AND block_number > {p2} ORDER BY seq DESC",
                d.read("before", ColumnKind::Json)
            ),
            scope(),
            &[ColumnKind::Int, ColumnKind::Text, ColumnKind::Text, ColumnKind::Json],
        )
        .await?;
    for cells in &journal {
        let entry = journal_entry(cells)?;
        let table = projections.table(&entry.table).ok_or_else(|| StoreError::Database {
            message: format!("journal names unknown table {}", entry.table),
        })?;
        let name = format!("{}{suffix}", table.name);
        write_row_into(tx, &name, table, &entry.key, entry.before.as_ref()).await?;
    }
    tx.execute(
        &format!("DELETE FROM {journal_table} WHERE chain_id = {p1} AND block_number > {p2}"),
        scope(),
    )
    .await?;
    Ok(())
}

fn journal_entry(cells: &[gemgate_projections::Cell]) -> Result<JournalEntry, StoreError> {
    let bad = || StoreError::Database { message: "malformed journal entry".into() };
    let block_number = match cells.first() {
        Some(gemgate_projections::Cell::Int(n)) => *n as u64,
        _ => return Err(bad()),
    };
    let table = cells.get(1).and_then(|c| c.as_text()).ok_or_else(bad)?.to_string();
    let key = cells.get(2).and_then(|c| c.as_text()).ok_or_else(bad)?.to_string();
    let before = match cells.get(3) {
        Some(gemgate_projections::Cell::Json(value)) => {
            Some(serde_json::from_value(value.clone()).map_err(|_| bad())?)
        }
        _ => None,
    };
    Ok(JournalEntry { block_number, table, key, before })
}

/// Records heads and prunes what finality made permanent.
pub async fn record_heads(tx: &mut dyn Tx, chain_id: ChainId, heads: &Heads) -> Result<(), StoreError> {
    let d = tx.dialect();
    let now = d.now();
    tx.execute(
        &format!(
            "INSERT INTO heads (chain_id, latest, safe, finalized) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (chain_id) DO UPDATE SET latest = excluded.latest, safe = excluded.safe, \
             finalized = excluded.finalized, updated_at = {now}",
            d.param(1),
            d.param(2),
            d.param(3),
            d.param(4)
        ),
        vec![Bind::int(chain_id), Bind::int(heads.latest), Bind::int(heads.safe), Bind::int(heads.finalized)],
    )
    .await?;
    let (p1, p2) = (d.param(1), d.param(2));
    // Keep the finalized block itself: the next block's parent check needs it.
    tx.execute(
        &format!("DELETE FROM blocks WHERE chain_id = {p1} AND number < {p2}"),
        vec![Bind::int(chain_id), Bind::int(heads.finalized)],
    )
    .await?;
    tx.execute(
        &format!("DELETE FROM journal WHERE chain_id = {p1} AND block_number <= {p2}"),
        vec![Bind::int(chain_id), Bind::int(heads.finalized)],
    )
    .await?;
    Ok(())
}
