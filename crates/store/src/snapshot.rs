//! Verifiable projection snapshots (`gemgate snapshot export|import`): every projection table, the reorg
//! window (`blocks`), the undo journal and each chain's cursor and heads, read in one consistent read
//! transaction and written as JSON lines, the same on SQLite and Postgres, with a sha256 digest over a
//! canonical encoding of every record.
//!
//! The file: a header line (format, version, cursors, tables and their columns), one line per record
//! (`{"table": NAME, "row": {COLUMN: VALUE}}` in a fixed order: blocks, journal, then each projection table by
//! key in byte order), and a trailer (`{"digest": HEX, "records": N}`). A value is encoded by its column's
//! kind: integers and booleans as JSON, U256 as a decimal string, JSON as canonical JSON (keys sorted, no
//! spaces). The digest covers the header without its `created_at` and every record line, so two databases
//! in the same state export the same digest whatever their backend.
//!
//! Import goes into an empty database, in one transaction: the digest is recomputed from what was read and
//! the import rolls back unless it matches. Whether the cursor is still canonical is the caller's check
//! (it needs the chain), made between `verify` and `import_snapshot`.

use std::io::{BufRead, Write};

use gemgate_domain::{ChainId, StoreError};
use gemgate_projections::{Cell, Column, ColumnKind, ProjectionSet, Row, TableDef};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::conn::{Bind, db_error};
use crate::write::{self, Tx};
use crate::{Dialect, Pool, SqlStore};

pub const FORMAT: &str = "gemgate-snapshot";
pub const VERSION: u64 = 1;

/// Rows read per query while exporting.
const PAGE: usize = 1_000;

/// One chain's position in a snapshot: where indexing resumes after an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCursor {
    pub chain_id: ChainId,
    pub block_number: u64,
    pub block_hash: String,
    pub parent_hash: String,
    pub latest: u64,
    pub safe: u64,
    pub finalized: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTable {
    pub name: String,
    /// (column, kind) in the table's order; `key` first for projection tables.
    pub columns: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub format: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub chains: Vec<SnapshotCursor>,
    pub tables: Vec<SnapshotTable>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub header: SnapshotHeader,
    /// Hex sha256.
    pub digest: String,
    pub records: u64,
}

static BLOCKS: TableDef = TableDef {
    name: "blocks",
    columns: &[
        Column { name: "chain_id", kind: ColumnKind::Int },
        Column { name: "number", kind: ColumnKind::Int },
        Column { name: "hash", kind: ColumnKind::Text },
        Column { name: "parent_hash", kind: ColumnKind::Text },
    ],
};

static JOURNAL: TableDef = TableDef {
    name: "journal",
    columns: &[
        Column { name: "chain_id", kind: ColumnKind::Int },
        Column { name: "block_number", kind: ColumnKind::Int },
        Column { name: "table_name", kind: ColumnKind::Text },
        Column { name: "row_key", kind: ColumnKind::Text },
        Column { name: "before", kind: ColumnKind::Json },
    ],
};

fn kind_name(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Int => "int",
        ColumnKind::Text => "text",
        ColumnKind::Num => "num",
        ColumnKind::Bool => "bool",
        ColumnKind::Json => "json",
    }
}

/// A table as the snapshot names its columns: `key` first for a projection table.
fn described(table: &TableDef, keyed: bool) -> SnapshotTable {
    let mut columns: Vec<(String, String)> = Vec::new();
    if keyed {
        columns.push(("key".into(), "text".into()));
    }
    columns.extend(table.columns.iter().map(|c| (c.name.to_string(), kind_name(c.kind).to_string())));
    SnapshotTable { name: table.name.to_string(), columns }
}

/// The tables a snapshot of `projections` holds, in file order.
fn snapshot_tables(projections: &ProjectionSet) -> Vec<(&'static TableDef, bool)> {
    let mut tables = vec![(&BLOCKS, false), (&JOURNAL, false)];
    tables.extend(projections.tables().into_iter().map(|t| (t, true)));
    tables
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), sorted(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's Map keeps keys sorted unless its `preserve_order` feature is on; `sorted` makes sure.
    sorted(value).to_string()
}

fn value_cell(value: &Value, kind: ColumnKind, what: &str) -> Result<Cell, StoreError> {
    let bad =
        || StoreError::Database { message: format!("snapshot: {what} is not a valid {}", kind_name(kind)) };
    Ok(match (value, kind) {
        (Value::Null, _) => Cell::Null,
        (Value::Number(n), ColumnKind::Int) => Cell::Int(n.as_i64().ok_or_else(bad)?),
        (Value::String(s), ColumnKind::Text) => Cell::Text(s.clone()),
        (Value::String(s), ColumnKind::Num) => Cell::Num(s.parse().map_err(|_| bad())?),
        (Value::Bool(b), ColumnKind::Bool) => Cell::Bool(*b),
        (v, ColumnKind::Json) => Cell::Json(v.clone()),
        _ => return Err(bad()),
    })
}

/// The digest as it goes: the header without its time, then each record line.
struct Hasher(Sha256);

impl Hasher {
    fn new(header: &SnapshotHeader) -> Self {
        let mut hashed = header.clone();
        hashed.created_at = None;
        let mut hasher = Sha256::new();
        hasher.update(canonical(&serde_json::to_value(&hashed).unwrap_or_default()).as_bytes());
        hasher.update(b"\n");
        Self(hasher)
    }

    fn record(&mut self, line: &str) {
        self.0.update(line.as_bytes());
        self.0.update(b"\n");
    }

    fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

fn io_error(e: &std::io::Error) -> StoreError {
    StoreError::Database { message: format!("snapshot file: {e}") }
}

impl SqlStore {
    /// Writes a snapshot of this database to `out`, read in one consistent transaction.
    pub async fn export_snapshot(&self, out: &mut (dyn Write + Send)) -> Result<SnapshotSummary, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                // A deferred transaction reads one snapshot of the database (WAL) from its first read on.
                let mut tx = pool.begin().await.map_err(db_error)?;
                export(&mut tx, &self.projections, out).await
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                export(&mut tx, &self.projections, out).await
            }
        }
    }

    /// Imports a snapshot into this database, which must hold no chain state and no projection rows, in
    /// one transaction that commits only if the recomputed digest matches the file's.
    pub async fn import_snapshot(
        &self,
        input: &mut (dyn BufRead + Send),
    ) -> Result<SnapshotSummary, StoreError> {
        let projections = self.projections.clone();
        in_tx!(self, tx => import(tx, &projections, input).await)
    }

    /// The snapshots this database was created from (chain, block, hash, digest), if any.
    pub async fn snapshot_imports(&self) -> Result<Vec<(ChainId, u64, String, String)>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch(
                        "SELECT chain_id, block_number, block_hash, digest FROM snapshot_imports ORDER BY chain_id",
                        Vec::new(),
                        &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Text, ColumnKind::Text],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let text = |c: &Cell| c.as_text().unwrap_or_default().to_string();
                        (crate::cells::int(&r[0]), crate::cells::int(&r[1]), text(&r[2]), text(&r[3]))
                    })
                    .collect())
            })
        })
        .await
    }
}

async fn export(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    out: &mut (dyn Write + Send),
) -> Result<SnapshotSummary, StoreError> {
    let d = tx.dialect();
    if d == Dialect::Postgres {
        // One snapshot of the database for every statement below, however the indexer commits meanwhile.
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", Vec::new()).await?;
    }
    let cursors = tx
        .fetch(
            "SELECT c.chain_id, c.block_number, c.block_hash, c.parent_hash, h.latest, h.safe, h.finalized \
             FROM cursors c LEFT JOIN heads h ON h.chain_id = c.chain_id ORDER BY c.chain_id",
            Vec::new(),
            &[
                ColumnKind::Int,
                ColumnKind::Int,
                ColumnKind::Text,
                ColumnKind::Text,
                ColumnKind::Int,
                ColumnKind::Int,
                ColumnKind::Int,
            ],
        )
        .await?;
    let chains: Vec<SnapshotCursor> = cursors
        .iter()
        .map(|r| SnapshotCursor {
            chain_id: crate::cells::int(&r[0]),
            block_number: crate::cells::int(&r[1]),
            block_hash: r[2].as_text().unwrap_or_default().to_string(),
            parent_hash: r[3].as_text().unwrap_or_default().to_string(),
            latest: crate::cells::int(&r[4]),
            safe: crate::cells::int(&r[5]),
            finalized: crate::cells::int(&r[6]),
        })
        .collect();
    let tables = snapshot_tables(projections);
    let header = SnapshotHeader {
        format: FORMAT.into(),
        version: VERSION,
        created_at: Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()),
        chains,
        tables: tables.iter().map(|(t, keyed)| described(t, *keyed)).collect(),
    };
    let mut hasher = Hasher::new(&header);
    let header_line = canonical(&serde_json::to_value(&header).unwrap_or_default());
    writeln!(out, "{header_line}").map_err(|e| io_error(&e))?;
    let mut records = 0u64;
    for (table, keyed) in tables {
        let mut after: Option<Vec<Cell>> = None;
        loop {
            let page = export_page(tx, table, keyed, after.as_deref()).await?;
            for cells in &page {
                let names = keyed.then_some("key").into_iter().chain(table.columns.iter().map(|c| c.name));
                // The journal's position column (`seq`) orders the pages but is not exported.
                let row: Map<String, Value> =
                    names.zip(cells).map(|(n, c)| (n.to_string(), crate::drift::cell_json(c))).collect();
                let line = canonical(&json!({"table": table.name, "row": row}));
                hasher.record(&line);
                writeln!(out, "{line}").map_err(|e| io_error(&e))?;
                records += 1;
            }
            if page.len() < PAGE {
                break;
            }
            after = page.last().cloned();
        }
    }
    let digest = hasher.finish();
    writeln!(out, "{}", canonical(&json!({"digest": digest, "records": records})))
        .map_err(|e| io_error(&e))?;
    out.flush().map_err(|e| io_error(&e))?;
    Ok(SnapshotSummary { header, digest, records })
}

/// One page of a table in export order, after the last row of the previous page. Returns the exported
/// cells, plus (journal) the trailing `seq` the next page starts after.
async fn export_page(
    tx: &mut dyn Tx,
    table: &TableDef,
    keyed: bool,
    after: Option<&[Cell]>,
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let d = tx.dialect();
    let mut columns: Vec<String> = Vec::new();
    let mut kinds: Vec<ColumnKind> = Vec::new();
    if keyed {
        columns.push("key".into());
        kinds.push(ColumnKind::Text);
    }
    columns.extend(table.columns.iter().map(|c| d.read(c.name, c.kind)));
    kinds.extend(table.columns.iter().map(|c| c.kind));
    // Byte order of keys on both backends (Postgres would otherwise sort by its collation).
    let collate = if d == Dialect::Postgres { " COLLATE \"C\"" } else { "" };
    let (order, keyset): (String, Vec<&str>) = match table.name {
        "blocks" => ("chain_id, number".into(), vec!["chain_id", "number"]),
        "journal" => {
            columns.push("seq".into());
            kinds.push(ColumnKind::Int);
            ("seq".into(), vec!["seq"])
        }
        _ => (format!("key{collate}"), vec!["key"]),
    };
    let (filter, binds) = match after {
        None => (String::new(), Vec::new()),
        Some(last) => {
            let values: Vec<Bind> = match table.name {
                "blocks" => vec![Bind::Int(int_of(&last[0])), Bind::Int(int_of(&last[1]))],
                "journal" => vec![Bind::Int(int_of(last.last().unwrap_or(&Cell::Null)))],
                _ => vec![Bind::Text(last[0].as_text().map(String::from))],
            };
            let params: Vec<String> = (1..=values.len()).map(|n| d.param(n)).collect();
            let lhs = keyset.iter().map(|c| format!("{c}{}", if *c == "key" { collate } else { "" }));
            (format!(" WHERE ({}) > ({})", lhs.collect::<Vec<_>>().join(", "), params.join(", ")), values)
        }
    };
    let sql =
        format!("SELECT {} FROM {}{filter} ORDER BY {order} LIMIT {PAGE}", columns.join(", "), table.name);
    tx.fetch(&sql, binds, &kinds).await
}

fn int_of(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(i) => Some(*i),
        _ => None,
    }
}

/// Reads a snapshot's header, every record and its trailer, checking the digest, without a database.
pub fn verify(input: &mut dyn BufRead) -> Result<SnapshotSummary, StoreError> {
    let mut reader = Reader::open(input)?;
    while reader.next_record()?.is_some() {}
    reader.finish()
}

/// A record: its table's name and its row.
type Record = (String, Map<String, Value>);

/// A snapshot file read line by line, hashing as it goes.
struct Reader<'a> {
    input: &'a mut dyn BufRead,
    header: SnapshotHeader,
    hasher: Option<Hasher>,
    records: u64,
    trailer: Option<(String, u64)>,
    line: String,
}

fn bad_file(message: impl std::fmt::Display) -> StoreError {
    StoreError::Database { message: format!("snapshot file: {message}") }
}

impl<'a> Reader<'a> {
    fn open(input: &'a mut dyn BufRead) -> Result<Self, StoreError> {
        let mut line = String::new();
        input.read_line(&mut line).map_err(|e| io_error(&e))?;
        let header: SnapshotHeader = serde_json::from_str(line.trim_end())
            .map_err(|e| bad_file(format!("the first line is not a gemgate snapshot header ({e})")))?;
        if header.format != FORMAT || header.version != VERSION {
            return Err(bad_file(format!(
                "format {} version {} (this gemgate reads {FORMAT} version {VERSION})",
                header.format, header.version
            )));
        }
        let hasher = Some(Hasher::new(&header));
        Ok(Self { input, header, hasher, records: 0, trailer: None, line })
    }

    /// The next record (table name and row object), or `None` after the trailer.
    fn next_record(&mut self) -> Result<Option<Record>, StoreError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        self.line.clear();
        if self.input.read_line(&mut self.line).map_err(|e| io_error(&e))? == 0 {
            return Err(bad_file(format!("truncated after {} records: no digest line", self.records)));
        }
        let value: Value = serde_json::from_str(self.line.trim_end())
            .map_err(|e| bad_file(format!("record {} is not JSON ({e})", self.records + 1)))?;
        if let Some(digest) = value.get("digest").and_then(Value::as_str) {
            let count = value.get("records").and_then(Value::as_u64).unwrap_or(u64::MAX);
            self.trailer = Some((digest.to_string(), count));
            return Ok(None);
        }
        let (Some(table), Some(row)) =
            (value.get("table").and_then(Value::as_str), value.get("row").and_then(Value::as_object))
        else {
            return Err(bad_file(format!("record {} has no table and row", self.records + 1)));
        };
        if let Some(hasher) = &mut self.hasher {
            hasher.record(&canonical(&value));
        }
        self.records += 1;
        Ok(Some((table.to_string(), row.clone())))
    }

    fn finish(mut self) -> Result<SnapshotSummary, StoreError> {
        let Some((expected, count)) = self.trailer.take() else {
            return Err(bad_file("no digest line"));
        };
        let digest = self.hasher.take().map(Hasher::finish).unwrap_or_default();
        if count != self.records {
            return Err(bad_file(format!("{} records, the digest line says {count}", self.records)));
        }
        if digest != expected {
            return Err(bad_file(format!(
                "digest mismatch: the records hash to {digest}, the file says {expected} (changed or damaged)"
            )));
        }
        Ok(SnapshotSummary { header: self.header, digest, records: self.records })
    }
}

async fn import(
    tx: &mut dyn Tx,
    projections: &ProjectionSet,
    input: &mut (dyn BufRead + Send),
) -> Result<SnapshotSummary, StoreError> {
    let d = tx.dialect();
    let mut reader = Reader::open(input)?;
    let tables = snapshot_tables(projections);
    let expected: Vec<SnapshotTable> = tables.iter().map(|(t, keyed)| described(t, *keyed)).collect();
    if reader.header.tables != expected {
        let names = |ts: &[SnapshotTable]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ");
        return Err(bad_file(format!(
            "its tables ({}) or their columns differ from this gemgate's ({}): export it again with this version",
            names(&reader.header.tables),
            names(&expected)
        )));
    }
    ensure_empty(tx, projections).await?;
    while let Some((name, row)) = reader.next_record()? {
        let Some((table, keyed)) = tables.iter().find(|(t, _)| t.name == name) else {
            return Err(bad_file(format!("record {} names unknown table {name}", reader.records)));
        };
        let what = |column: &str| format!("record {} column {name}.{column}", reader.records);
        let mut cells: Vec<(String, Cell)> = Vec::new();
        for column in table.columns {
            let value = row.get(column.name).unwrap_or(&Value::Null);
            cells.push((column.name.to_string(), value_cell(value, column.kind, &what(column.name))?));
        }
        if *keyed {
            let key = row
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_file(format!("record {} of {name} has no key", reader.records)))?
                .to_string();
            let values: Row = cells.into_iter().collect();
            write::write_row(tx, table, &key, Some(&values)).await?;
        } else {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            let params: Vec<String> =
                table.columns.iter().enumerate().map(|(i, c)| d.param_as(i + 1, c.kind)).collect();
            let binds: Vec<Bind> = table
                .columns
                .iter()
                .zip(&cells)
                .map(|(c, (_, cell))| Bind::cell(Some(cell), c.kind))
                .collect();
            tx.execute(
                &format!("INSERT INTO {} ({}) VALUES ({})", table.name, names.join(", "), params.join(", ")),
                binds,
            )
            .await?;
        }
    }
    let summary = reader.finish()?;
    let now = d.now();
    for chain in &summary.header.chains {
        let p: Vec<String> = (1..=6).map(|n| d.param(n)).collect();
        tx.execute(
            &format!(
                "INSERT INTO cursors (chain_id, block_number, block_hash, parent_hash) VALUES ({}, {}, {}, {})",
                p[0], p[1], p[2], p[3]
            ),
            vec![
                Bind::int(chain.chain_id),
                Bind::int(chain.block_number),
                Bind::text(chain.block_hash.clone()),
                Bind::text(chain.parent_hash.clone()),
            ],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO heads (chain_id, latest, safe, finalized) VALUES ({}, {}, {}, {})",
                p[0], p[1], p[2], p[3]
            ),
            vec![
                Bind::int(chain.chain_id),
                Bind::int(chain.latest),
                Bind::int(chain.safe),
                Bind::int(chain.finalized),
            ],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO snapshot_imports (chain_id, block_number, block_hash, digest, imported_at) \
                 VALUES ({}, {}, {}, {}, {now})",
                p[0], p[1], p[2], p[3]
            ),
            vec![
                Bind::int(chain.chain_id),
                Bind::int(chain.block_number),
                Bind::text(chain.block_hash.clone()),
                Bind::text(summary.digest.clone()),
            ],
        )
        .await?;
    }
    Ok(summary)
}

/// Refuses a database that holds any chain state, events or projection rows.
async fn ensure_empty(tx: &mut dyn Tx, projections: &ProjectionSet) -> Result<(), StoreError> {
    let mut tables: Vec<&str> = vec!["cursors", "events", "blocks", "journal"];
    tables.extend(projections.tables().iter().map(|t| t.name));
    for table in tables {
        let rows = tx
            .fetch(&format!("SELECT CAST(1 AS BIGINT) FROM {table} LIMIT 1"), Vec::new(), &[ColumnKind::Int])
            .await?;
        if !rows.is_empty() {
            return Err(StoreError::Database {
                message: format!(
                    "the database is not empty (table {table} has rows): import a snapshot into a new database"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}}"#).unwrap();
        assert_eq!(canonical(&value), r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#);
    }

    #[test]
    fn a_changed_record_or_count_is_refused() {
        let header = SnapshotHeader {
            format: FORMAT.into(),
            version: VERSION,
            created_at: Some("2026-12-03T00:00:00Z".into()),
            chains: Vec::new(),
            tables: Vec::new(),
        };
        let record = canonical(&json!({"table": "blocks", "row": {"chain_id": 1, "number": 2}}));
        let mut hasher = Hasher::new(&header);
        hasher.record(&record);
        let digest = hasher.finish();
        let file = |record: &str, count: u64| {
            format!(
                "{}\n{record}\n{}\n",
                serde_json::to_string(&header).unwrap(),
                canonical(&json!({"digest": digest, "records": count}))
            )
        };
        assert!(verify(&mut file(&record, 1).as_bytes()).is_ok());
        // Formatting does not matter (the canonical form is hashed); content does.
        let spaced = r#"{ "row": {"number": 2, "chain_id": 1}, "table": "blocks" }"#;
        assert!(verify(&mut file(spaced, 1).as_bytes()).is_ok());
        let changed = canonical(&json!({"table": "blocks", "row": {"chain_id": 1, "number": 3}}));
        let error = verify(&mut file(&changed, 1).as_bytes()).unwrap_err().to_string();
        assert!(error.contains("digest mismatch"), "{error}");
        let error = verify(&mut file(&record, 2).as_bytes()).unwrap_err().to_string();
        assert!(error.contains("the digest line says 2"), "{error}");
        let truncated = format!("{}\n{record}\n", serde_json::to_string(&header).unwrap());
        let error = verify(&mut truncated.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("truncated"), "{error}");
    }
}
