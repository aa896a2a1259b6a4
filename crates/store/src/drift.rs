//! Hybrid reconciliation in the database: projection rows read for comparison with the contracts' own
//! views, and drift recorded in one transaction with its `drift.detected` outbox message and, when healed,
//! the corrected row and its journal entry (so a later reorg reverts it like any projection change).

use alloy_primitives::Address;
use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_domain::ports::DriftStore;
use gemgate_domain::state::{Drift, DriftRecord, ProjectedRow};
use gemgate_projections::{Cell, ColumnKind, JournalEntry, RowLoader, TableDef};
use serde_json::{Value, json};

use crate::bulk::OutboxRow;
use crate::conn::{Bind, db_error};
use crate::write::{self, Loader, Tx};
use crate::{Pool, SqlStore};

/// A cell as JSON, the way the API shows projection values (U256 as decimal text).
pub(crate) fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::from(*i),
        Cell::Text(t) => Value::from(t.clone()),
        Cell::Num(n) => Value::from(n.to_string()),
        Cell::Bool(b) => Value::from(*b),
        Cell::Json(v) => v.clone(),
    }
}

/// JSON as a cell of `kind`; `None` when it does not fit.
fn json_cell(value: &Value, kind: ColumnKind) -> Option<Cell> {
    Some(match (value, kind) {
        (Value::Null, _) => Cell::Null,
        (Value::String(s), ColumnKind::Num) => Cell::Num(s.parse().ok()?),
        (Value::Number(n), ColumnKind::Num) => Cell::Num(n.as_u64()?.try_into().ok()?),
        (Value::String(s), ColumnKind::Text) => Cell::Text(s.clone()),
        (Value::Bool(b), ColumnKind::Bool) => Cell::Bool(*b),
        (Value::Number(n), ColumnKind::Int) => Cell::Int(n.as_i64()?),
        (v, ColumnKind::Json) => Cell::Json(v.clone()),
        _ => return None,
    })
}

impl SqlStore {
    fn projection_table(&self, table: &str) -> Result<&'static TableDef, StoreError> {
        self.projections
            .table(table)
            .ok_or_else(|| StoreError::Database { message: format!("{table:?} is not a projection table") })
    }
}

#[async_trait]
impl DriftStore for SqlStore {
    async fn projected_rows(
        &self,
        table: &str,
        argument_column: &str,
        columns: &[String],
        address: Address,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<ProjectedRow>, StoreError> {
        let def = self.projection_table(table)?;
        let mut wanted = vec![argument_column.to_string()];
        wanted.extend(columns.iter().cloned());
        let mut read = Vec::new();
        for name in &wanted {
            let column = def.column(name).ok_or_else(|| StoreError::Database {
                message: format!("table {table} has no column {name:?}"),
            })?;
            read.push((column.name, column.kind));
        }
        let updated = def.column("updated_block").is_some();
        let by_contract = def.column("contract").is_some();
        let address = address.to_checksum(None);
        let limit = limit.clamp(1, 10_000);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let mut select: Vec<String> = vec!["key".into()];
                select.extend(read.iter().map(|(name, kind)| d.read(name, *kind)));
                let mut kinds: Vec<ColumnKind> = vec![ColumnKind::Text];
                kinds.extend(read.iter().map(|(_, kind)| *kind));
                if updated {
                    select.push("updated_block".into());
                    kinds.push(ColumnKind::Int);
                }
                let (mut filters, mut binds) = (Vec::new(), Vec::new());
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
                            "SELECT {} FROM {}{filter} ORDER BY key LIMIT {limit}",
                            select.join(", "),
                            def.name
                        ),
                        binds,
                        &kinds,
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| ProjectedRow {
                        key: r[0].as_text().unwrap_or_default().to_string(),
                        argument: cell_json(&r[1]),
                        values: r[2..2 + read.len() - 1].iter().map(cell_json).collect(),
                        updated_block: updated.then(|| crate::cells::int(&r[r.len() - 1])),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn record_drift(&self, drifts: &[Drift]) -> Result<Vec<Drift>, StoreError> {
        let mut resolved = Vec::new();
        for drift in drifts {
            resolved.push((drift, self.projection_table(&drift.table)?));
        }
        in_tx!(self, tx => record(tx, &resolved).await)
    }

    async fn drift(&self, before: Option<u64>, limit: u32) -> Result<Vec<DriftRecord>, StoreError> {
        let limit = limit.clamp(1, 1_000);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let (filter, binds) = match before {
                    Some(id) => (format!(" WHERE id < {}", d.param(1)), vec![Bind::int(id)]),
                    None => (String::new(), Vec::new()),
                };
                let rows = tx
                    .fetch(
                        &format!(
                            "SELECT id, chain_id, table_name, row_key, column_name, {}, {}, block_number, block_hash, \
                             healed, {} FROM drift{filter} ORDER BY id DESC LIMIT {limit}",
                            d.read("projected", ColumnKind::Json),
                            d.read("on_chain", ColumnKind::Json),
                            d.read_time("detected_at")
                        ),
                        binds,
                        &[
                            ColumnKind::Int,
                            ColumnKind::Int,
                            ColumnKind::Text,
                            ColumnKind::Text,
                            ColumnKind::Text,
                            ColumnKind::Json,
                            ColumnKind::Json,
                            ColumnKind::Int,
                            ColumnKind::Text,
                            ColumnKind::Bool,
                            ColumnKind::Text,
                        ],
                    )
                    .await?;
                let text = |c: &Cell| c.as_text().unwrap_or_default().to_string();
                Ok(rows
                    .iter()
                    .map(|r| DriftRecord {
                        id: crate::cells::int(&r[0]),
                        drift: Drift {
                            chain_id: crate::cells::int(&r[1]),
                            table: text(&r[2]),
                            key: text(&r[3]),
                            column: text(&r[4]),
                            projected: cell_json(&r[5]),
                            on_chain: cell_json(&r[6]),
                            block_number: crate::cells::int(&r[7]),
                            block_hash: text(&r[8]).parse().unwrap_or_default(),
                            healed: r[9].as_bool(),
                        },
                        detected_at: text(&r[10]),
                    })
                    .collect())
            })
        })
        .await
    }
}

async fn record(tx: &mut dyn Tx, drifts: &[(&Drift, &'static TableDef)]) -> Result<Vec<Drift>, StoreError> {
    let mut chains: Vec<u64> = drifts.iter().map(|(d, _)| d.chain_id).collect();
    chains.sort_unstable();
    chains.dedup();
    for chain in chains {
        // The indexer's batches wait: a row read below is not changed by one until this commits.
        write::locked_cursor(tx, chain).await?;
    }
    let mut recorded = Vec::new();
    for (drift, table) in drifts {
        let Some(column) = table.column(&drift.column) else { continue };
        let row = Loader { tx: &mut *tx, suffix: "" }.load(table, &drift.key).await?;
        let Some(mut row) = row else { continue };
        let current = row.get(column.name).map_or(Value::Null, cell_json);
        let changed_since = match row.get("updated_block") {
            Some(Cell::Int(block)) => *block as u64 > drift.block_number,
            _ => false,
        };
        if current != drift.projected || changed_since {
            continue;
        }
        let healed = drift.healed && json_cell(&drift.on_chain, column.kind).is_some();
        insert_drift(tx, drift, healed).await?;
        let drift = Drift { healed, ..(*drift).clone() };
        tx.insert_outbox(&[outbox_row(&drift)]).await?;
        if healed && let Some(cell) = json_cell(&drift.on_chain, column.kind) {
            let before = JournalEntry {
                block_number: drift.block_number,
                table: table.name.to_string(),
                key: drift.key.clone(),
                before: Some(row.clone()),
            };
            write::write_journal(tx, "journal", drift.chain_id, &[before]).await?;
            row.insert(column.name.to_string(), cell);
            write::write_row(tx, table, &drift.key, Some(&row)).await?;
        }
        recorded.push(drift);
    }
    Ok(recorded)
}

async fn insert_drift(tx: &mut dyn Tx, drift: &Drift, healed: bool) -> Result<(), StoreError> {
    let d = tx.dialect();
    let p: Vec<String> = (1..=9)
        .map(|n| if n == 6 || n == 7 { d.param_as(n, ColumnKind::Json) } else { d.param(n) })
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO drift (chain_id, table_name, row_key, column_name, block_number, projected, on_chain, \
             block_hash, healed) VALUES ({})",
            p.join(", ")
        ),
        vec![
            Bind::int(drift.chain_id),
            Bind::text(drift.table.clone()),
            Bind::text(drift.key.clone()),
            Bind::text(drift.column.clone()),
            Bind::int(drift.block_number),
            Bind::text(drift.projected.to_string()),
            Bind::text(drift.on_chain.to_string()),
            Bind::text(drift.block_hash.to_string()),
            Bind::Bool(Some(healed)),
        ],
    )
    .await?;
    Ok(())
}

/// The `drift.detected` message every sink receives; its id is stable for (row, column, block).
fn outbox_row(drift: &Drift) -> OutboxRow {
    let id = format!(
        "drift:{}:{}:{}:{}:{}",
        drift.chain_id, drift.table, drift.key, drift.column, drift.block_number
    );
    let payload = json!({
        "id": id,
        "kind": "drift.detected",
        "chain_id": drift.chain_id,
        "table": drift.table,
        "key": drift.key,
        "column": drift.column,
        "projected": drift.projected,
        "on_chain": drift.on_chain,
        "block_number": drift.block_number,
        "block_hash": drift.block_hash,
        "healed": drift.healed,
    });
    OutboxRow {
        id,
        kind: "drift.detected".into(),
        chain_id: drift.chain_id as i64,
        block_number: Some(drift.block_number as i64),
        log_index: None,
        ordering_key: format!("drift:{}:{}", drift.table, drift.key),
        status: "canonical".into(),
        payload: Some(payload.to_string()),
    }
}
