//! Reading the ledger: one request and its attempts, a sender's requests, the live work of a worker, the
//! pages of `GET /v1/transactions`, the counts by state.

use super::*;

impl SqlStore {
    /// One request by id.
    pub async fn transaction(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| Box::pin(async move { record_by_id(tx, &id).await })).await
    }

    /// A request's attempts in order.
    pub async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_attempts WHERE request_id = {} ORDER BY attempt",
                    ATTEMPT.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
                    d.param(1)
                );
                let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds(&ATTEMPT)).await?;
                Ok(rows.iter().map(|r| attempt(r)).collect())
            })
        })
        .await
    }

    /// A sender's requests on a chain in nonce order (for gap checks and tests).
    pub async fn transactions_of(&self, chain_id: u64, sender: &str) -> Result<Vec<TxRecord>, StoreError> {
        let sender = sender.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_requests WHERE chain_id = {} AND sender = {} ORDER BY nonce",
                    columns(d),
                    d.param(1),
                    d.param(2)
                );
                let rows =
                    tx.fetch(&sql, vec![Bind::int(chain_id), Bind::text(sender)], &kinds(&RECORD)).await?;
                rows.iter().map(|r| record(r)).collect()
            })
        })
        .await
    }

    /// The requests the workers still follow on a chain, in nonce order with their attempts: one sender's
    /// (`Some`), or every client-signed one (`None`).
    pub async fn live_transactions(
        &self,
        chain_id: u64,
        sender: Option<&str>,
    ) -> Result<Vec<LiveTx>, StoreError> {
        let sender = sender.map(str::to_string);
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let live = LIVE_STATES.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
                let (filter, binds) = match &sender {
                    Some(sender) => (
                        format!("chain_id = {} AND sender = {} AND origin <> 'raw'", d.param(1), d.param(2)),
                        vec![Bind::int(chain_id), Bind::text(sender)],
                    ),
                    None => (format!("chain_id = {} AND origin = 'raw'", d.param(1)), vec![Bind::int(chain_id)]),
                };
                let where_clause = format!("{filter} AND state IN ({live})");
                let created_ms = match d {
                    Dialect::Postgres => "(extract(epoch FROM created_at) * 1000)::bigint",
                    Dialect::Sqlite => "CAST(ROUND((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)",
                };
                let sql = format!(
                    "SELECT {}, {created_ms} FROM tx_requests WHERE {where_clause} ORDER BY sender, nonce",
                    columns(d)
                );
                let mut record_kinds = kinds(&RECORD);
                record_kinds.push(ColumnKind::Int);
                let records = tx.fetch(&sql, binds.clone(), &record_kinds).await?;
                let sql = format!(
                    "SELECT {} FROM tx_attempts WHERE request_id IN (SELECT id FROM tx_requests WHERE {where_clause}) \
                     ORDER BY request_id, attempt",
                    ATTEMPT.iter().map(|(c, _)| format!("tx_attempts.{c}")).collect::<Vec<_>>().join(", ")
                );
                let attempt_rows = tx.fetch(&sql, binds, &kinds(&ATTEMPT)).await?;
                let mut by_id: std::collections::HashMap<String, Vec<Attempt>> = std::collections::HashMap::new();
                for row in &attempt_rows {
                    by_id.entry(text(row, 0).unwrap_or_default()).or_default().push(attempt(row));
                }
                records
                    .iter()
                    .map(|row| {
                        let record = record(row)?;
                        let attempts = by_id.remove(&record.id).unwrap_or_default();
                        Ok(LiveTx { record, attempts, created_ms: int(row, RECORD.len()).unwrap_or_default() })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Requests newest first, filtered, a page at a time (`GET /v1/transactions`). Each comes with its
    /// creation time (RFC 3339, UTC); `next` is the cursor of the following page when there may be one.
    pub async fn list_transactions(&self, query: &TxListQuery) -> Result<TxPage, StoreError> {
        let query = query.clone();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let mut filters = Vec::new();
                let mut binds = Vec::new();
                let bind = |b: Bind, binds: &mut Vec<Bind>| {
                    binds.push(b);
                    binds.len()
                };
                let time = |n: usize| match d {
                    Dialect::Postgres => format!("${n}::timestamptz"),
                    Dialect::Sqlite => d.param(n),
                };
                if let Some(signer) = &query.signer {
                    filters
                        .push(format!("signer = {}", d.param(bind(Bind::text(signer.clone()), &mut binds))));
                }
                if let Some(chain_id) = query.chain_id {
                    filters.push(format!("chain_id = {}", d.param(bind(Bind::int(chain_id), &mut binds))));
                }
                if let Some(state) = query.state {
                    filters
                        .push(format!("state = {}", d.param(bind(Bind::text(state.as_str()), &mut binds))));
                }
                if let Some(from) = &query.from_time {
                    filters
                        .push(format!("created_at >= {}", time(bind(Bind::text(from.clone()), &mut binds))));
                }
                if let Some((created, id)) = &query.before {
                    let t = bind(Bind::text(created.clone()), &mut binds);
                    let i = bind(Bind::text(id.clone()), &mut binds);
                    filters.push(format!("(created_at, id) < ({}, {})", time(t), d.param(i)));
                }
                let created = match d {
                    // Microseconds, so the cursor compares equal to the stored value.
                    Dialect::Postgres => {
                        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                    }
                    Dialect::Sqlite => "created_at",
                };
                let sql = format!(
                    "SELECT {}, {created} FROM tx_requests {} ORDER BY created_at DESC, id DESC LIMIT {}",
                    columns(d),
                    if filters.is_empty() {
                        String::new()
                    } else {
                        format!("WHERE {}", filters.join(" AND "))
                    },
                    query.limit + 1
                );
                let mut kinds = kinds(&RECORD);
                kinds.push(ColumnKind::Text);
                let rows = tx.fetch(&sql, binds, &kinds).await?;
                let more = rows.len() > query.limit as usize;
                let mut items = Vec::new();
                for row in rows.iter().take(query.limit as usize) {
                    items.push((record(row)?, text(row, RECORD.len()).unwrap_or_default()));
                }
                let next = if more {
                    items.last().map(|(r, created)| (created.clone(), r.id.clone()))
                } else {
                    None
                };
                Ok(TxPage { items, next })
            })
        })
        .await
    }

    /// The number of requests per state (tests, status).
    pub async fn transaction_states(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with_tx(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch(
                        "SELECT state, COUNT(*) FROM tx_requests GROUP BY state ORDER BY state",
                        Vec::new(),
                        &[ColumnKind::Text, ColumnKind::Int],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| (text(r, 0).unwrap_or_default(), int(r, 1).unwrap_or_default()))
                    .collect())
            })
        })
        .await
    }
}
