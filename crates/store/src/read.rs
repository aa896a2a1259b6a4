//! Reads for the API and the tests: events with filters and cursor pagination, projection rows as JSON,
//! and per-chain status. Finality is computed at read time from the recorded heads, so an event's
//! `finality` is always current.

use std::collections::BTreeMap;

use alloy_primitives::Address;
use gemgate_domain::ports::Heads;
use gemgate_domain::{BlockRef, ChainEvent, ChainId, StoreError};
use gemgate_projections::{Cell, ColumnKind, TableDef};

use crate::SqlStore;
use crate::cells::{EVENT_COLUMNS, block_from_cells, event_from_cells, int, row_select};
use crate::conn::Bind;

pub use gemgate_domain::reads::{ChainStatus, EventPage, EventQuery};

impl SqlStore {
    /// Heads of every chain.
    pub async fn heads(&self) -> Result<BTreeMap<ChainId, Heads>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch(
                        "SELECT chain_id, latest, safe, finalized FROM heads",
                        Vec::new(),
                        &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Int, ColumnKind::Int],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (int(&r[0]), Heads { latest: int(&r[1]), safe: int(&r[2]), finalized: int(&r[3]) })
                    })
                    .collect())
            })
        })
        .await
    }

    /// Events in chain order, filtered, one page at a time.
    pub async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let heads = self.heads().await?;
        let query = query.clone();
        let limit = query.limit.clamp(1, 1_000);
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    let mut clauses = Vec::new();
                    let mut binds = Vec::new();
                    let param = |bind: Bind, binds: &mut Vec<Bind>| {
                        binds.push(bind);
                        d.param(binds.len())
                    };
                    if let Some(chain) = query.chain_id {
                        clauses.push(format!("chain_id = {}", param(Bind::int(chain), &mut binds)));
                    }
                    if let Some(address) = query.address {
                        clauses.push(format!("address = {}", param(Bind::text(address.to_checksum(None)), &mut binds)));
                    }
                    if let Some(name) = &query.event {
                        clauses.push(format!("event = {}", param(Bind::text(name.clone()), &mut binds)));
                    }
                    if let Some(from) = query.from_block {
                        clauses.push(format!("block_number >= {}", param(Bind::int(from), &mut binds)));
                    }
                    if let Some(to) = query.to_block {
                        clauses.push(format!("block_number <= {}", param(Bind::int(to), &mut binds)));
                    }
                    if let Some((chain, block, log)) = query.after {
                        let (c, b1, b2, l) = (
                            param(Bind::int(chain), &mut binds),
                            param(Bind::int(block), &mut binds),
                            param(Bind::int(block), &mut binds),
                            param(Bind::int(log), &mut binds),
                        );
                        let c2 = param(Bind::int(chain), &mut binds);
                        clauses.push(format!(
                            "(chain_id > {c} OR (chain_id = {c2} AND (block_number > {b1} OR (block_number = {b2} AND log_index > {l}))))"
                        ));
                    }
                    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
                    let columns: Vec<String> = EVENT_COLUMNS.iter().map(|(c, k)| d.read(c, *k)).collect();
                    let sql = format!(
                        "SELECT {} FROM events {filter} ORDER BY chain_id, block_number, log_index LIMIT {}",
                        columns.join(", "),
                        limit
                    );
                    let kinds: Vec<ColumnKind> = EVENT_COLUMNS.iter().map(|(_, k)| *k).collect();
                    tx.fetch(&sql, binds, &kinds).await
                })
            })
            .await?;
        let events: Vec<ChainEvent> =
            rows.iter().map(|r| event_from_cells(r, &heads)).collect::<Result<_, _>>()?;
        let next = (events.len() == limit as usize)
            .then(|| events.last().map(|e| format!("{}:{}:{}", e.chain_id, e.block_number, e.log_index)))
            .flatten();
        Ok(EventPage { events, next })
    }

    /// The rows of one contract in a projection table (its `chain_id` and `contract` columns), by key.
    pub async fn contract_rows(
        &self,
        table: &'static TableDef,
        chain_id: ChainId,
        contract: Address,
    ) -> Result<Vec<(String, gemgate_projections::Row)>, StoreError> {
        let contract = contract.to_checksum(None);
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    let (columns, kinds) = row_select(table, d);
                    let sql = format!(
                        "SELECT {} FROM {} WHERE chain_id = {} AND contract = {} ORDER BY key",
                        columns.join(", "),
                        table.name,
                        d.param(1),
                        d.param(2)
                    );
                    tx.fetch(&sql, vec![Bind::int(chain_id), Bind::text(contract)], &kinds).await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|cells| {
                let mut cells = cells.into_iter();
                let key = cells.next().and_then(|c| c.as_text().map(str::to_string)).unwrap_or_default();
                let row = table.columns.iter().map(|c| c.name.to_string()).zip(cells).collect();
                (key, row)
            })
            .collect())
    }

    /// Rows of a projection table as JSON objects (U256 as decimal strings), ordered by key.
    pub async fn projection_rows(
        &self,
        table: &'static TableDef,
        key: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let limit = limit.clamp(1, 1_000);
        let rows = self
            .with_tx(move |tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    let (columns, kinds) = row_select(table, d);
                    let (filter, binds) = match (key, after) {
                        (Some(key), _) => (format!("WHERE key = {}", d.param(1)), vec![Bind::text(key)]),
                        (None, Some(after)) => {
                            (format!("WHERE key > {}", d.param(1)), vec![Bind::text(after)])
                        }
                        (None, None) => (String::new(), Vec::new()),
                    };
                    let sql = format!(
                        "SELECT {} FROM {} {filter} ORDER BY key LIMIT {limit}",
                        columns.join(", "),
                        table.name
                    );
                    tx.fetch(&sql, binds, &kinds).await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|cells| {
                let mut object = serde_json::Map::new();
                let names = std::iter::once("key").chain(table.columns.iter().map(|c| c.name));
                for (name, cell) in names.zip(cells) {
                    let value = match cell {
                        Cell::Null => serde_json::Value::Null,
                        Cell::Int(i) => serde_json::Value::from(i),
                        Cell::Text(s) => serde_json::Value::String(s),
                        Cell::Num(n) => serde_json::Value::String(n.to_string()),
                        Cell::Bool(b) => serde_json::Value::Bool(b),
                        Cell::Json(v) => v,
                    };
                    object.insert(name.to_string(), value);
                }
                serde_json::Value::Object(object)
            })
            .collect())
    }

    /// Progress of every chain that has a cursor or heads.
    pub async fn chain_status(&self) -> Result<Vec<ChainStatus>, StoreError> {
        let heads = self.heads().await?;
        let cursors = self
            .with_tx(|tx| {
                Box::pin(async move {
                    let rows = tx
                        .fetch(
                            "SELECT chain_id, block_number, block_hash, parent_hash FROM cursors ORDER BY chain_id",
                            Vec::new(),
                            &[ColumnKind::Int, ColumnKind::Int, ColumnKind::Text, ColumnKind::Text],
                        )
                        .await?;
                    let counts = tx
                        .fetch(
                            "SELECT chain_id, COUNT(*) FROM events GROUP BY chain_id",
                            Vec::new(),
                            &[ColumnKind::Int, ColumnKind::Int],
                        )
                        .await?;
                    let counts: BTreeMap<u64, u64> = counts.iter().map(|r| (int(&r[0]), int(&r[1]))).collect();
                    rows.iter()
                        .map(|r| Ok((int(&r[0]), block_from_cells(&r[1..])?, counts.get(&int(&r[0])).copied())))
                        .collect::<Result<Vec<(u64, BlockRef, Option<u64>)>, StoreError>>()
                })
            })
            .await?;
        let mut chains: BTreeMap<ChainId, ChainStatus> = BTreeMap::new();
        for (chain_id, cursor, count) in cursors {
            chains.insert(
                chain_id,
                ChainStatus {
                    chain_id,
                    head: None,
                    indexed: Some(cursor.number),
                    indexed_hash: Some(cursor.hash),
                    safe: None,
                    finalized: None,
                    events: count.unwrap_or(0),
                },
            );
        }
        for (chain_id, h) in heads {
            let status = chains.entry(chain_id).or_insert(ChainStatus {
                chain_id,
                head: None,
                indexed: None,
                indexed_hash: None,
                safe: None,
                finalized: None,
                events: 0,
            });
            status.head = Some(h.latest);
            status.safe = Some(h.safe);
            status.finalized = Some(h.finalized);
        }
        Ok(chains.into_values().collect())
    }

    /// Outbox rows (id, status) of a chain in order: what sinks will see. For tests and `sinks` tooling.
    pub async fn outbox_statuses(&self, chain_id: ChainId) -> Result<Vec<(String, String)>, StoreError> {
        self.with_tx(move |tx| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id, status FROM outbox WHERE chain_id = {} ORDER BY seq",
                    tx.dialect().param(1)
                );
                let rows =
                    tx.fetch(&sql, vec![Bind::int(chain_id)], &[ColumnKind::Text, ColumnKind::Text]).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (
                            r[0].as_text().unwrap_or_default().to_string(),
                            r[1].as_text().unwrap_or_default().to_string(),
                        )
                    })
                    .collect())
            })
        })
        .await
    }
}

impl SqlStore {
    /// How many events of each name are stored (unknown topic0s count under `""`).
    pub async fn event_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch(
                        "SELECT event, COUNT(*) FROM events GROUP BY event ORDER BY event",
                        Vec::new(),
                        &[ColumnKind::Text, ColumnKind::Int],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| (r[0].as_text().unwrap_or_default().to_string(), int(&r[1])))
                    .collect())
            })
        })
        .await
    }
}
