//! Stored cells to domain values, shared by the read and the write paths (so neither imports the other):
//! the events select list, an event or a block from its cells, a projection table's select list.

use std::collections::BTreeMap;

use alloy_primitives::{B256, Bytes};
use gemgate_domain::ports::Heads;
use gemgate_domain::{BlockRef, ChainEvent, ChainId, ENVELOPE_SCHEMA, EventStatus, StoreError};
use gemgate_projections::{Cell, ColumnKind, TableDef};

pub(crate) const EVENT_COLUMNS: &[(&str, ColumnKind)] = &[
    ("id", ColumnKind::Text),
    ("chain_id", ColumnKind::Int),
    ("block_number", ColumnKind::Int),
    ("block_hash", ColumnKind::Text),
    ("tx_hash", ColumnKind::Text),
    ("tx_index", ColumnKind::Int),
    ("log_index", ColumnKind::Int),
    ("address", ColumnKind::Text),
    ("contract", ColumnKind::Text),
    ("event", ColumnKind::Text),
    ("signature", ColumnKind::Text),
    ("args", ColumnKind::Json),
    ("topics", ColumnKind::Json),
    ("data", ColumnKind::Text),
];

pub(crate) fn int(cell: &Cell) -> u64 {
    match cell {
        Cell::Int(i) => *i as u64,
        _ => 0,
    }
}

fn parse<T: std::str::FromStr>(cell: &Cell, what: &str) -> Result<T, StoreError> {
    cell.as_text()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| StoreError::Database { message: format!("stored {what} does not parse") })
}

pub(crate) fn event_from_cells(
    cells: &[Cell],
    heads: &BTreeMap<ChainId, Heads>,
) -> Result<ChainEvent, StoreError> {
    let chain_id = int(&cells[1]);
    let block_number = int(&cells[2]);
    let topics: Vec<B256> = match &cells[12] {
        Cell::Json(value) => serde_json::from_value(value.clone())
            .map_err(|_| StoreError::Database { message: "stored topics do not parse".into() })?,
        _ => Vec::new(),
    };
    Ok(ChainEvent {
        id: parse(&cells[0], "event id")?,
        chain_id,
        block_number,
        block_hash: parse(&cells[3], "block hash")?,
        tx_hash: parse(&cells[4], "tx hash")?,
        tx_index: int(&cells[5]),
        log_index: int(&cells[6]),
        address: parse(&cells[7], "address")?,
        contract: cells[8].as_text().unwrap_or_default().to_string(),
        event: cells[9].as_text().unwrap_or_default().to_string(),
        signature: parse(&cells[10], "signature")?,
        args: match &cells[11] {
            Cell::Json(value) => value.clone(),
            _ => serde_json::Value::Null,
        },
        topics,
        data: parse::<Bytes>(&cells[13], "data")?,
        status: EventStatus::Canonical,
        finality: heads.get(&chain_id).copied().unwrap_or_default().level_of(block_number),
        tx_from: None,
        schema: ENVELOPE_SCHEMA,
    })
}

/// The select list of a projection table's rows (`key`, then its columns) and the kinds to read them as.
pub(crate) fn row_select(table: &TableDef, d: crate::Dialect) -> (Vec<String>, Vec<ColumnKind>) {
    let mut columns = vec!["key".to_string()];
    columns.extend(table.columns.iter().map(|c| d.read(c.name, c.kind)));
    let mut kinds = vec![ColumnKind::Text];
    kinds.extend(table.columns.iter().map(|c| c.kind));
    (columns, kinds)
}

pub(crate) fn block_from_cells(cells: &[Cell]) -> Result<BlockRef, StoreError> {
    let bad = || StoreError::Database { message: "malformed stored block".into() };
    let number = match cells.first() {
        Some(Cell::Int(n)) => *n as u64,
        _ => return Err(bad()),
    };
    let hash = cells.get(1).and_then(|c| c.as_text()).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let parent_hash = cells.get(2).and_then(|c| c.as_text()).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    Ok(BlockRef { number, hash, parent_hash })
}
