//! Contract-state snapshots in the database: each snapshot's table (`key`, `args`, `value`, `reverted`,
//! `block_number`, `block_hash`), its staging table (`<table>__run`) that a run fills batch by batch, and
//! the record of runs (`state_snapshot_runs`). A run's rows replace the table's in one transaction, so a
//! reader sees one run's rows, all read at that run's block, never a mix.

use alloy_primitives::Address;
use async_trait::async_trait;
use gemgate_domain::calls::PinnedBlock;
use gemgate_domain::ports::StateSnapshots;
use gemgate_domain::state::{RunStats, StateRow, StateRun};
use gemgate_domain::{ChainId, StoreError};
use gemgate_projections::{Cell, ColumnKind};
use serde_json::Value;

use crate::conn::{Bind, db_error};
use crate::write::Tx;
use crate::{Dialect, Pool, SqlStore};

const STAGING: &str = "__run";
/// Rows per staging statement: 6 binds each, well inside SQLite's 32,766.
const STAGE_CHUNK: usize = 500;

/// Refuses a name that is not a plain identifier (the settings only hold such names; this keeps any
/// other caller from putting text into SQL).
fn identifier(name: &str) -> Result<&str, StoreError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(name)
        .ok_or_else(|| StoreError::Database { message: format!("{name:?} is not a table name") })
}

fn create(d: Dialect, name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (key TEXT PRIMARY KEY, args {json} NOT NULL, value {json}, \
         reverted TEXT, block_number {int} NOT NULL, block_hash TEXT NOT NULL)",
        json = d.column_type(ColumnKind::Json),
        int = d.column_type(ColumnKind::Int)
    )
}

const COLUMNS: &str = "key, args, value, reverted, block_number, block_hash";

async fn set_run(
    tx: &mut dyn Tx,
    run: u64,
    state: &str,
    stats: RunStats,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let p: Vec<String> = (1..=7).map(|n| d.param(n)).collect();
    tx.execute(
        &format!(
            "UPDATE state_snapshot_runs SET state = {}, rows_written = {}, calls = {}, batches = {}, duration_ms = {}, \
             error = {}, finished_at = {} WHERE id = {}",
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            p[5],
            d.now(),
            p[6]
        ),
        vec![
            Bind::text(state),
            Bind::int(stats.rows),
            Bind::int(stats.calls),
            Bind::int(stats.batches),
            Bind::int(stats.duration_ms),
            Bind::Text(error.map(String::from)),
            Bind::int(run),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl StateSnapshots for SqlStore {
    async fn begin_state_run(
        &self,
        name: &str,
        table: &str,
        chain_id: ChainId,
        block: PinnedBlock,
    ) -> Result<u64, StoreError> {
        let table = identifier(table)?;
        in_tx!(self, tx => {
            let d = tx.dialect();
            tx.execute(&create(d, table), Vec::new()).await?;
            tx.execute(&create(d, &format!("{table}{STAGING}")), Vec::new()).await?;
            tx.execute(&format!("DELETE FROM {table}{STAGING}"), Vec::new()).await?;
            tx.execute(
                &format!(
                    "UPDATE state_snapshot_runs SET state = 'abandoned', error = 'the process running it stopped', \
                     finished_at = {} WHERE name = {} AND state = 'running'",
                    d.now(),
                    d.param(1)
                ),
                vec![Bind::text(name)],
            )
            .await?;
            let p: Vec<String> = (1..=5).map(|n| d.param(n)).collect();
            let rows = tx
                .fetch(
                    &format!(
                        "INSERT INTO state_snapshot_runs (name, table_name, chain_id, block_number, block_hash, state) \
                         VALUES ({}, {}, {}, {}, {}, 'running') RETURNING id",
                        p[0], p[1], p[2], p[3], p[4]
                    ),
                    vec![
                        Bind::text(name),
                        Bind::text(table),
                        Bind::int(chain_id),
                        Bind::int(block.number),
                        Bind::text(block.hash.to_string()),
                    ],
                    &[ColumnKind::Int],
                )
                .await?;
            Ok::<u64, StoreError>(rows.first().map_or(0, |r| crate::cells::int(&r[0])))
        })
    }

    async fn stage_state_rows(
        &self,
        table: &str,
        block: PinnedBlock,
        rows: &[StateRow],
    ) -> Result<(), StoreError> {
        let table = identifier(table)?;
        // A repeated key keeps its last row (one statement may not touch a row twice on Postgres).
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<&StateRow> = rows.iter().rev().filter(|r| seen.insert(r.key.as_str())).collect();
        unique.reverse();
        in_tx!(self, tx => {
            let d = tx.dialect();
            for chunk in unique.chunks(STAGE_CHUNK) {
                let mut values = Vec::with_capacity(chunk.len());
                let mut binds = Vec::with_capacity(chunk.len() * 6);
                for row in chunk {
                    let n = binds.len();
                    values.push(format!(
                        "({}, {}, {}, {}, {}, {})",
                        d.param(n + 1),
                        d.param_as(n + 2, ColumnKind::Json),
                        d.param_as(n + 3, ColumnKind::Json),
                        d.param(n + 4),
                        d.param(n + 5),
                        d.param(n + 6)
                    ));
                    binds.extend([
                        Bind::text(row.key.clone()),
                        Bind::text(row.args.to_string()),
                        Bind::Text(row.value.as_ref().map(Value::to_string)),
                        Bind::Text(row.reverted.clone()),
                        Bind::int(block.number),
                        Bind::text(block.hash.to_string()),
                    ]);
                }
                let sql = format!(
                    "INSERT INTO {table}{STAGING} ({COLUMNS}) VALUES {} ON CONFLICT (key) DO UPDATE SET \
                     args = excluded.args, value = excluded.value, reverted = excluded.reverted",
                    values.join(", ")
                );
                tx.execute(&sql, binds).await?;
            }
            Ok::<(), StoreError>(())
        })
    }

    async fn finish_state_run(&self, run: u64, table: &str, stats: RunStats) -> Result<(), StoreError> {
        let table = identifier(table)?;
        in_tx!(self, tx => {
            tx.execute(&format!("DELETE FROM {table}"), Vec::new()).await?;
            tx.execute(
                &format!("INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM {table}{STAGING}"),
                Vec::new(),
            )
            .await?;
            tx.execute(&format!("DELETE FROM {table}{STAGING}"), Vec::new()).await?;
            set_run(tx, run, "complete", stats, None).await
        })
    }

    async fn abandon_state_run(
        &self,
        run: u64,
        table: &str,
        stats: RunStats,
        error: &str,
    ) -> Result<(), StoreError> {
        let table = identifier(table)?;
        in_tx!(self, tx => {
            tx.execute(&format!("DELETE FROM {table}{STAGING}"), Vec::new()).await?;
            set_run(tx, run, "abandoned", stats, Some(error)).await
        })
    }

    async fn projection_values(
        &self,
        table: &str,
        column: &str,
        address: Address,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, Value)>, StoreError> {
        let def = self.projections.table(table).ok_or_else(|| StoreError::Database {
            message: format!("{table:?} is not a projection table"),
        })?;
        let kind = def
            .column(column)
            .ok_or_else(|| StoreError::Database {
                message: format!("table {table} has no column {column:?}"),
            })?
            .kind;
        let by_contract = def.column("contract").is_some();
        let address = address.to_checksum(None);
        let column = column.to_string();
        let limit = limit.clamp(1, 10_000);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let mut filters = Vec::new();
                let mut binds = Vec::new();
                if by_contract {
                    binds.push(Bind::text(address));
                    filters.push(format!("contract = {}", d.param(binds.len())));
                }
                if let Some(after) = after {
                    binds.push(Bind::text(after));
                    filters.push(format!("key > {}", d.param(binds.len())));
                }
                let filter = if filters.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", filters.join(" AND "))
                };
                let rows = tx
                    .fetch(
                        &format!(
                            "SELECT key, {} FROM {}{filter} ORDER BY key LIMIT {limit}",
                            d.read(&column, kind),
                            def.name
                        ),
                        binds,
                        &[ColumnKind::Text, kind],
                    )
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let key = r[0].as_text().unwrap_or_default().to_string();
                        (key, crate::drift::cell_json(&r[1]))
                    })
                    .collect())
            })
        })
        .await
    }

    async fn state_runs(&self, name: Option<&str>, limit: u32) -> Result<Vec<StateRun>, StoreError> {
        let name = name.map(String::from);
        let limit = limit.clamp(1, 1_000);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let (filter, binds) = match name {
                    Some(name) => (format!(" WHERE name = {}", d.param(1)), vec![Bind::text(name)]),
                    None => (String::new(), Vec::new()),
                };
                let rows = tx
                    .fetch(
                        &format!(
                            "SELECT id, name, table_name, chain_id, block_number, block_hash, state, rows_written, calls, \
                             batches, duration_ms, error, {}, {} FROM state_snapshot_runs{filter} ORDER BY id DESC LIMIT {limit}",
                            d.read_time("started_at"),
                            d.read_time("finished_at")
                        ),
                        binds,
                        &[
                            ColumnKind::Int,
                            ColumnKind::Text,
                            ColumnKind::Text,
                            ColumnKind::Int,
                            ColumnKind::Int,
                            ColumnKind::Text,
                            ColumnKind::Text,
                            ColumnKind::Int,
                            ColumnKind::Int,
                            ColumnKind::Int,
                            ColumnKind::Int,
                            ColumnKind::Text,
                            ColumnKind::Text,
                            ColumnKind::Text,
                        ],
                    )
                    .await?;
                let int = |c: &Cell| crate::cells::int(c);
                let text = |c: &Cell| c.as_text().map(String::from);
                Ok(rows
                    .iter()
                    .map(|r| StateRun {
                        id: int(&r[0]),
                        name: text(&r[1]).unwrap_or_default(),
                        table: text(&r[2]).unwrap_or_default(),
                        chain_id: int(&r[3]),
                        block_number: int(&r[4]),
                        block_hash: text(&r[5]).and_then(|t| t.parse().ok()).unwrap_or_default(),
                        state: text(&r[6]).unwrap_or_default(),
                        stats: RunStats {
                            rows: int(&r[7]),
                            calls: int(&r[8]),
                            batches: int(&r[9]),
                            duration_ms: int(&r[10]),
                        },
                        error: text(&r[11]),
                        started_at: text(&r[12]).unwrap_or_default(),
                        finished_at: text(&r[13]),
                    })
                    .collect())
            })
        })
        .await
    }
}
