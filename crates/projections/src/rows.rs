//! Rows, tables and the per-batch overlay with its undo journal.

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::U256;
use async_trait::async_trait;
use gemgate_domain::StoreError;
use serde::{Deserialize, Serialize};

/// How a column is stored: `Num` is a U256 (NUMERIC(78,0) on Postgres, decimal text on SQLite), `Json` is
/// JSONB on Postgres and text on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    Num,
    Bool,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// A projection table: a text primary key `key` plus typed columns. Its DDL lives in the migrations.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [Column],
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A value in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Num(U256),
    Bool(bool),
    Json(serde_json::Value),
}

impl Cell {
    pub fn as_num(&self) -> U256 {
        match self {
            Cell::Num(n) => *n,
            Cell::Int(i) => U256::from(*i as u64),
            _ => U256::ZERO,
        }
    }

    pub fn as_bool(&self) -> bool {
        matches!(self, Cell::Bool(true))
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// A row: column name to value (the key column `key` excluded).
pub type Row = BTreeMap<String, Cell>;

/// Loads rows inside the store's transaction.
#[async_trait]
pub trait RowLoader: Send {
    async fn load(&mut self, table: &'static TableDef, key: &str) -> Result<Option<Row>, StoreError>;
}

/// The state of a row before a change in a given block, to restore if that block is reorged away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub block_number: u64,
    pub table: String,
    pub key: String,
    /// `None`: the row did not exist.
    pub before: Option<Row>,
}

/// A row's final state after the batch (`None`: delete it).
#[derive(Debug, Clone)]
pub struct RowWrite {
    pub table: &'static TableDef,
    pub key: String,
    pub row: Option<Row>,
}

struct Entry {
    table: &'static TableDef,
    original: Option<Row>,
    current: Option<Row>,
    journaled_block: Option<u64>,
}

/// The overlay one batch works on: each row is loaded once, changed in memory, written once at the end.
pub struct Rows<'a> {
    loader: &'a mut dyn RowLoader,
    entries: HashMap<(&'static str, String), Entry>,
    order: Vec<(&'static str, String)>,
    journal: Vec<JournalEntry>,
    block: u64,
    finalized: u64,
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("rows", &self.entries.len()).field("block", &self.block).finish()
    }
}

impl<'a> Rows<'a> {
    /// Changes in blocks above `finalized` are journaled.
    pub fn new(loader: &'a mut dyn RowLoader, finalized: u64) -> Self {
        Self { loader, entries: HashMap::new(), order: Vec::new(), journal: Vec::new(), block: 0, finalized }
    }

    /// The block of the event being applied.
    pub fn at_block(&mut self, block: u64) {
        self.block = block;
    }

    async fn entry(&mut self, table: &'static TableDef, key: &str) -> Result<&mut Entry, StoreError> {
        let id = (table.name, key.to_string());
        if !self.entries.contains_key(&id) {
            let original = self.loader.load(table, key).await?;
            self.order.push(id.clone());
            self.entries.insert(
                id.clone(),
                Entry { table, original: original.clone(), current: original, journaled_block: None },
            );
        }
        Ok(self.entries.get_mut(&id).expect("inserted above"))
    }

    /// The row as it is now in this batch.
    pub async fn get(&mut self, table: &'static TableDef, key: &str) -> Result<Option<Row>, StoreError> {
        Ok(self.entry(table, key).await?.current.clone())
    }

    /// Replaces (or creates) a row.
    pub async fn put(&mut self, table: &'static TableDef, key: &str, row: Row) -> Result<(), StoreError> {
        self.change(table, key, Some(row)).await
    }

    pub async fn delete(&mut self, table: &'static TableDef, key: &str) -> Result<(), StoreError> {
        self.change(table, key, None).await
    }

    async fn change(
        &mut self,
        table: &'static TableDef,
        key: &str,
        row: Option<Row>,
    ) -> Result<(), StoreError> {
        let (block, finalized) = (self.block, self.finalized);
        let entry = self.entry(table, key).await?;
        let journal = (block > finalized && entry.journaled_block != Some(block)).then(|| JournalEntry {
            block_number: block,
            table: table.name.to_string(),
            key: key.to_string(),
            before: entry.current.clone(),
        });
        if journal.is_some() {
            entry.journaled_block = Some(block);
        }
        entry.current = row;
        if let Some(journal) = journal {
            self.journal.push(journal);
        }
        Ok(())
    }

    /// The journal entries and the rows to write, in first-touched order.
    pub fn finish(self) -> (Vec<JournalEntry>, Vec<RowWrite>) {
        let mut entries = self.entries;
        let writes = self
            .order
            .into_iter()
            .filter_map(|id| {
                let entry = entries.remove(&id)?;
                (entry.current != entry.original).then_some(RowWrite {
                    table: entry.table,
                    key: id.1,
                    row: entry.current,
                })
            })
            .collect();
        (self.journal, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: TableDef =
        TableDef { name: "things", columns: &[Column { name: "n", kind: ColumnKind::Int }] };

    struct Db(HashMap<String, Row>);

    #[async_trait]
    impl RowLoader for Db {
        async fn load(&mut self, _table: &'static TableDef, key: &str) -> Result<Option<Row>, StoreError> {
            Ok(self.0.get(key).cloned())
        }
    }

    fn row(n: i64) -> Row {
        Row::from([("n".to_string(), Cell::Int(n))])
    }

    #[tokio::test]
    async fn journals_once_per_block_above_finality_and_writes_final_state() {
        let mut db = Db(HashMap::from([("a".to_string(), row(1))]));
        let mut rows = Rows::new(&mut db, 10);
        rows.at_block(9);
        rows.put(&TABLE, "a", row(2)).await.unwrap();
        rows.at_block(11);
        rows.put(&TABLE, "a", row(3)).await.unwrap();
        rows.put(&TABLE, "a", row(4)).await.unwrap();
        rows.at_block(12);
        rows.put(&TABLE, "b", row(7)).await.unwrap();
        rows.delete(&TABLE, "a").await.unwrap();
        let (journal, writes) = rows.finish();
        let summary: Vec<_> =
            journal.iter().map(|j| (j.block_number, j.key.as_str(), j.before.clone())).collect();
        assert_eq!(
            summary,
            vec![(11, "a", Some(row(2))), (12, "b", None), (12, "a", Some(row(4)))],
            "block 9 is final: no journal; one before image per row and block"
        );
        let writes: Vec<_> = writes.iter().map(|w| (w.key.as_str(), w.row.clone())).collect();
        assert_eq!(writes, vec![("a", None), ("b", Some(row(7)))]);
    }

    #[tokio::test]
    async fn an_unchanged_row_is_not_written() {
        let mut db = Db(HashMap::from([("a".to_string(), row(1))]));
        let mut rows = Rows::new(&mut db, 0);
        rows.at_block(5);
        rows.put(&TABLE, "a", row(1)).await.unwrap();
        let (_, writes) = rows.finish();
        assert!(writes.is_empty());
    }
}
