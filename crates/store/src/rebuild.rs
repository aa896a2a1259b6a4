//! Rebuilding the projections from the stored events (`gemgate replay`), beside the live tables.
//!
//! The events are applied in chain order, one chunk per transaction, into shadow tables (`<table>__replay`)
//! with their own undo journal (`replay_journal`); each chunk's transaction also records how far it got
//! (`rebuild_positions`), so a killed rebuild resumes where it stopped. The last transaction locks every
//! chain's cursor (a running indexer waits for it), undoes the shadows' changes above finality, applies the
//! events above finality and any the indexer committed meanwhile, and swaps the shadows in for the tables
//! and their journal in for the journal. Readers see the old tables until that commit and the new ones
//! after it; a reorg during the rebuild is harmless, because everything above finality is applied again
//! from the events as they are at the swap.

use gemgate_domain::{ChainEvent, ChainId, StoreError};
use gemgate_projections::{Cell, ColumnKind, ProjectionSet, Rows, TableDef};

use crate::Pool;
use crate::conn::{Bind, db_error};
use crate::write::{self, Loader, Tx};
use crate::{Dialect, SqlStore};

/// A shadow table's name is its table's name with this suffix.
pub const SHADOW: &str = "__replay";

#[derive(Debug, Clone, Copy)]
pub struct RebuildOptions {
    /// Throw away an interrupted rebuild's work instead of resuming it.
    pub restart: bool,
    /// Events applied per transaction (the most held in memory at once).
    pub chunk: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self { restart: false, chunk: 5_000 }
    }
}

/// How far a rebuild has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    pub chain_id: ChainId,
    /// The block of the last event applied.
    pub block: u64,
    /// Events applied so far, on every chain, including before a resume.
    pub applied: u64,
    /// Events stored when the rebuild started.
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Events applied, the swap's included.
    pub applied: u64,
    /// Events applied by an earlier run this one resumed, if it resumed one.
    pub resumed_at: Option<u64>,
    /// Events applied in the swap's transaction (those above finality and any committed meanwhile).
    pub at_swap: u64,
    pub tables: usize,
}

/// A chain position: (block number, log index), (-1, -1) before the first event.
type Position = (i64, i64);
const START: Position = (-1, -1);

fn shadow(table: &TableDef) -> String {
    format!("{}{SHADOW}", table.name)
}

fn table_list(projections: &ProjectionSet) -> String {
    projections.tables().iter().map(|t| t.name).collect::<Vec<_>>().join(",")
}

impl SqlStore {
    /// Rebuilds every projection table from the stored events and swaps the result in atomically,
    /// resuming an interrupted rebuild unless `options.restart`. `progress` is called after each chunk.
    pub async fn rebuild_projections(
        &self,
        options: RebuildOptions,
        mut progress: impl FnMut(&RebuildProgress) + Send,
    ) -> Result<RebuildSummary, StoreError> {
        let projections = &self.projections;
        let chunk = options.chunk.clamp(1, 100_000);
        let tables = table_list(projections);
        let (total, resumed_at) = in_tx!(self, tx => begin(tx, projections, &tables, options.restart).await)?;
        let chains: Vec<ChainId> = self.with_tx(|tx| Box::pin(cursor_chains(tx))).await?;
        let mut state = RebuildProgress { total, applied: resumed_at.unwrap_or(0), ..Default::default() };
        for &chain_id in &chains {
            state.chain_id = chain_id;
            loop {
                let step = in_tx!(self, tx => {
                    lock(tx).await?;
                    let after = position(tx, chain_id).await?.map_or(START, |p| p.0);
                    let applied = apply_after(tx, projections, chain_id, after, chunk).await?;
                    if let Some((last, count, finalized)) = applied {
                        record_position(tx, chain_id, last, count, finalized).await?;
                    }
                    Ok::<_, StoreError>(applied)
                })?;
                let Some((last, count, _)) = step else { break };
                state.block = last.0 as u64;
                state.applied += count;
                progress(&state);
                if (count as usize) < chunk {
                    break;
                }
            }
        }
        let at_swap = in_tx!(self, tx => swap(tx, projections, chunk).await)?;
        Ok(RebuildSummary {
            applied: state.applied + at_swap,
            resumed_at,
            at_swap,
            tables: projections.tables().len(),
        })
    }

    /// The rebuild in progress (interrupted, or running elsewhere), if any.
    pub async fn rebuild_in_progress(&self) -> Result<Option<RebuildProgress>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx.fetch("SELECT total FROM rebuilds", Vec::new(), &[ColumnKind::Int]).await?;
                let Some(total) = rows.first().map(|r| crate::cells::int(&r[0])) else { return Ok(None) };
                let positions = tx
                    .fetch(
                        "SELECT chain_id, block_number, applied FROM rebuild_positions ORDER BY updated_at DESC",
                        Vec::new(),
                        &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Int],
                    )
                    .await?;
                let applied = positions.iter().map(|r| crate::cells::int(&r[2])).sum();
                let (chain_id, block) =
                    positions.first().map_or((0, 0), |r| (crate::cells::int(&r[0]), crate::cells::int(&r[1])));
                Ok(Some(RebuildProgress { chain_id, block, applied, total }))
            })
        })
        .await
    }
}

/// Starts a rebuild (fresh shadow tables, empty shadow journal) or finds the interrupted one to resume.
/// Returns the events stored at the start and, when resuming, how many were applied already.
async fn begin(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    tables: &str,
    restart: bool,
) -> Result<(u64, Option<u64>), StoreError> {
    let d = tx.dialect();
    let imported = tx
        .fetch(
            "SELECT chain_id, block_number FROM snapshot_imports",
            Vec::new(),
            &[ColumnKind::Int, ColumnKind::Int],
        )
        .await?;
    if let Some(row) = imported.first() {
        return Err(StoreError::Database {
            message: format!(
                "this database was created from a snapshot of chain {} at block {}: the events below that block \
                 are not stored here, so rebuilding from the store would lose what they made; index the chain \
                 into a new database instead",
                crate::cells::int(&row[0]),
                crate::cells::int(&row[1])
            ),
        });
    }
    let existing = tx
        .fetch("SELECT tables, total FROM rebuilds", Vec::new(), &[ColumnKind::Text, ColumnKind::Int])
        .await?;
    if let Some(row) = existing.first()
        && !restart
    {
        if row[0].as_text() == Some(tables) {
            let applied =
                tx.fetch("SELECT applied FROM rebuild_positions", Vec::new(), &[ColumnKind::Int]).await?;
            return Ok((
                crate::cells::int(&row[1]),
                Some(applied.iter().map(|r| crate::cells::int(&r[0])).sum()),
            ));
        }
        tracing::warn!(
            was = row[0].as_text().unwrap_or_default(),
            now = tables,
            "the interrupted rebuild was of other projection tables; starting again"
        );
    }
    for table in projections.tables() {
        tx.execute(&format!("DROP TABLE IF EXISTS {}", shadow(table)), Vec::new()).await?;
        tx.execute(&d.create_table_as(&shadow(table), table), Vec::new()).await?;
    }
    for cleared in ["replay_journal", "rebuild_positions", "rebuilds"] {
        tx.execute(&format!("DELETE FROM {cleared}"), Vec::new()).await?;
    }
    if d == Dialect::Postgres {
        // Events bulk-loaded by COPY may have no statistics yet; without them the planner reads every
        // remaining event and sorts it for each chunk instead of walking the primary key.
        tx.execute("ANALYZE events", Vec::new()).await?;
    }
    let count = tx.fetch("SELECT COUNT(*) FROM events", Vec::new(), &[ColumnKind::Int]).await?;
    let total = count.first().map_or(0, |r| crate::cells::int(&r[0]));
    tx.execute(
        &format!("INSERT INTO rebuilds (id, tables, total) VALUES (1, {}, {})", d.param(1), d.param(2)),
        vec![Bind::text(tables), Bind::int(total)],
    )
    .await?;
    Ok((total, None))
}

/// Takes the rebuild's row lock on Postgres, so two replays of one database apply each chunk once
/// (SQLite's write lock serialises them already). Fails when no rebuild is in progress (another replay
/// swapped it in meanwhile).
async fn lock(tx: &mut dyn Tx) -> Result<(), StoreError> {
    let lock = if tx.dialect() == Dialect::Postgres { " FOR UPDATE" } else { "" };
    let rows = tx
        .fetch(&format!("SELECT total FROM rebuilds WHERE id = 1{lock}"), Vec::new(), &[ColumnKind::Int])
        .await?;
    if rows.is_empty() {
        return Err(StoreError::Database { message: "the rebuild was finished by another replay".into() });
    }
    Ok(())
}

async fn cursor_chains(tx: &mut dyn Tx) -> Result<Vec<ChainId>, StoreError> {
    let rows =
        tx.fetch("SELECT chain_id FROM cursors ORDER BY chain_id", Vec::new(), &[ColumnKind::Int]).await?;
    Ok(rows.iter().map(|r| crate::cells::int(&r[0])).collect())
}

/// A chain's rebuild position and the highest finalized block its events were applied with.
async fn position(tx: &mut dyn Tx, chain_id: ChainId) -> Result<Option<(Position, u64)>, StoreError> {
    let p1 = tx.dialect().param(1);
    let rows = tx
        .fetch(
            &format!(
                "SELECT block_number, log_index, finalized FROM rebuild_positions WHERE chain_id = {p1}"
            ),
            vec![Bind::int(chain_id)],
            &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Int],
        )
        .await?;
    Ok(rows.first().map(|r| {
        let int = |c: &Cell| if let Cell::Int(i) = c { *i } else { -1 };
        ((int(&r[0]), int(&r[1])), int(&r[2]).max(0) as u64)
    }))
}

async fn record_position(
    tx: &mut dyn Tx,
    chain_id: ChainId,
    last: Position,
    count: u64,
    finalized: u64,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let now = d.now();
    let (greatest, p) = (if d == Dialect::Postgres { "GREATEST" } else { "max" }, |n| d.param(n));
    tx.execute(
        &format!(
            "INSERT INTO rebuild_positions (chain_id, block_number, log_index, applied, finalized) \
             VALUES ({}, {}, {}, {}, {}) ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number, \
             log_index = excluded.log_index, applied = rebuild_positions.applied + excluded.applied, \
             finalized = {greatest}(rebuild_positions.finalized, excluded.finalized), updated_at = {now}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        ),
        vec![
            Bind::int(chain_id),
            Bind::Int(Some(last.0)),
            Bind::Int(Some(last.1)),
            Bind::int(count),
            Bind::int(finalized),
        ],
    )
    .await?;
    Ok(())
}

async fn finalized(tx: &mut dyn Tx, chain_id: ChainId) -> Result<u64, StoreError> {
    let p1 = tx.dialect().param(1);
    let rows = tx
        .fetch(
            &format!("SELECT finalized FROM heads WHERE chain_id = {p1}"),
            vec![Bind::int(chain_id)],
            &[ColumnKind::Int],
        )
        .await?;
    Ok(rows.first().map_or(0, |r| crate::cells::int(&r[0])))
}

/// Applies up to `limit` of a chain's stored events after `after` to the shadow tables, journaling
/// changes above the finalized block. Returns the last position applied, how many, and that finalized block.
async fn apply_after(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    chain_id: ChainId,
    after: Position,
    limit: usize,
) -> Result<Option<(Position, u64, u64)>, StoreError> {
    let started = std::time::Instant::now();
    let finalized = finalized(tx, chain_id).await?;
    let events = events_after(tx, chain_id, after, limit).await?;
    let read = started.elapsed();
    let Some(last) = events.last() else { return Ok(None) };
    let last = (last.block_number as i64, last.log_index as i64);
    let (journal, writes) = {
        let mut loader = Loader { tx: &mut *tx, suffix: SHADOW };
        let mut rows = Rows::new(&mut loader, finalized);
        projections.apply_all(&events, &mut rows).await.map_err(|e| match e {
            gemgate_projections::ProjectionError::Load(e) => e,
            other => StoreError::Database { message: other.to_string() },
        })?;
        rows.finish()
    };
    write::write_journal(tx, "replay_journal", chain_id, &journal).await?;
    for w in &writes {
        write::write_row_into(tx, &shadow(w.table), w.table, &w.key, w.row.as_ref()).await?;
    }
    tracing::debug!(
        chain_id,
        events = events.len(),
        rows = writes.len(),
        read_ms = read.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "rebuild chunk applied"
    );
    Ok(Some((last, events.len() as u64, finalized)))
}

/// A chain's stored events after a position, in chain order, with the senders kept for projections.
async fn events_after(
    tx: &mut dyn Tx,
    chain_id: ChainId,
    after: Position,
    limit: usize,
) -> Result<Vec<ChainEvent>, StoreError> {
    let d = tx.dialect();
    let mut columns: Vec<String> = crate::cells::EVENT_COLUMNS.iter().map(|(c, k)| d.read(c, *k)).collect();
    columns.push("tx_from".into());
    let mut kinds: Vec<ColumnKind> = crate::cells::EVENT_COLUMNS.iter().map(|(_, k)| *k).collect();
    kinds.push(ColumnKind::Text);
    let rows = tx
        .fetch(
            &format!(
                // The whole primary key in the comparison, so both backends read it as a range of the index.
                "SELECT {} FROM events WHERE chain_id = {p1} AND (chain_id, block_number, log_index) > ({p1}, {}, {}) \
                 ORDER BY chain_id, block_number, log_index LIMIT {limit}",
                columns.join(", "),
                d.param(2),
                d.param(3),
                p1 = d.param(1),
            ),
            vec![Bind::int(chain_id), Bind::Int(Some(after.0)), Bind::Int(Some(after.1))],
            &kinds,
        )
        .await?;
    let no_heads = std::collections::BTreeMap::new();
    rows.iter()
        .map(|cells| {
            let mut event = crate::cells::event_from_cells(cells, &no_heads)?;
            event.tx_from = cells.last().and_then(|c| c.as_text()).and_then(|t| t.parse().ok());
            Ok(event)
        })
        .collect()
}

/// The swap: with every cursor locked, bring each chain's shadows to its cursor (undo above finality,
/// apply from there), then put the shadow tables and journal in place of the live ones. Returns the
/// events applied here.
async fn swap(tx: &mut dyn Tx, projections: &ProjectionSet, chunk: usize) -> Result<u64, StoreError> {
    lock(tx).await?;
    let chains = cursor_chains(tx).await?;
    for &chain_id in &chains {
        write::locked_cursor(tx, chain_id).await?;
    }
    let d = tx.dialect();
    let mut applied = 0;
    for &chain_id in &chains {
        let (reached, applied_with) = position(tx, chain_id).await?.unwrap_or((START, 0));
        let finalized = finalized(tx, chain_id).await?.max(applied_with);
        write::undo_journal(tx, projections, "replay_journal", SHADOW, chain_id, finalized).await?;
        let mut after = if reached.0 > finalized as i64 { (finalized as i64, i64::MAX) } else { reached };
        while let Some((last, count, _)) = apply_after(tx, projections, chain_id, after, chunk).await? {
            applied += count;
            after = last;
        }
        let (p1, p2) = (d.param(1), d.param(2));
        tx.execute(
            &format!("DELETE FROM replay_journal WHERE chain_id = {p1} AND block_number <= {p2}"),
            vec![Bind::int(chain_id), Bind::int(finalized)],
        )
        .await?;
    }
    for table in projections.tables() {
        tx.execute(&format!("DROP TABLE IF EXISTS {}", table.name), Vec::new()).await?;
        tx.execute(&format!("ALTER TABLE {} RENAME TO {}", shadow(table), table.name), Vec::new()).await?;
        if d == Dialect::Postgres {
            tx.execute(
                &format!("ALTER INDEX {}_pkey RENAME TO {}_pkey", shadow(table), table.name),
                Vec::new(),
            )
            .await?;
        }
    }
    tx.execute("DELETE FROM journal", Vec::new()).await?;
    tx.execute(
        "INSERT INTO journal (chain_id, block_number, table_name, row_key, before) \
         SELECT chain_id, block_number, table_name, row_key, before FROM replay_journal ORDER BY seq",
        Vec::new(),
    )
    .await?;
    for cleared in ["replay_journal", "rebuild_positions", "rebuilds"] {
        tx.execute(&format!("DELETE FROM {cleared}"), Vec::new()).await?;
    }
    Ok(applied)
}
