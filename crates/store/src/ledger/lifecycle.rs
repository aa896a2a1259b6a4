//! Moving requests along: leases with fencing tokens, lifecycle changes applied in bulk at the revision they
//! were decided on, cancel and speed-up marks.

use gemgate_domain::cluster::{Fence, LeaseKey};

use super::*;

impl SqlStore {
    /// Takes (or renews) the lease on a sender for `ttl_ms`: granted when it is free, expired or already
    /// ours (`holder`); a new holder gets a higher fencing token. `None` while another holder's lease runs.
    pub async fn acquire_lease(
        &self,
        chain_id: u64,
        sender: &str,
        holder: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Lease>, StoreError> {
        let key = LeaseKey::signer(chain_id, sender);
        let taken = in_tx!(self, tx => crate::leases::acquire(tx, &key, holder, None, now_ms, ttl_ms).await)?;
        Ok(taken.map(|fence| Lease { chain_id, sender: sender.to_string(), token: fence.token }))
    }

    /// Applies lifecycle changes in one database transaction. With a lease, the transaction first renews it
    /// (until `now_ms + ttl_ms`) and fails with `Fenced` when another worker took it since, so nothing a
    /// stale worker decided commits. A change whose revision moved meanwhile is skipped. Returns how many
    /// changes applied.
    pub async fn apply_changes(
        &self,
        lease: Option<&Lease>,
        now_ms: u64,
        ttl_ms: u64,
        changes: &[TxChange],
    ) -> Result<usize, StoreError> {
        in_tx!(self, tx => apply(tx, lease, now_ms, now_ms + ttl_ms, changes).await)
    }

    /// Asks for a request to end as `cancelled` (or `expired`): recorded when it can still be stopped (not
    /// included or terminal); the worker then sends the no-op. Returns the record as it is now.
    pub async fn request_ending(&self, id: &str, ending: TxState) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "UPDATE tx_requests SET ending = {} WHERE id = {} AND origin <> 'raw' AND ending IS NULL \
                 AND state IN ('queued', 'signed', 'submitted')",
                d.param(1),
                d.param(2)
            );
            tx.execute(&sql, vec![Bind::text(ending.as_str()), Bind::text(id.clone())]).await?;
            record_by_id(tx, &id).await
        })
    }

    /// Marks a request for an immediate fee bump (speed-up): its last attempt counts as sent long ago.
    pub async fn request_speed_up(&self, id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = id.to_string();
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "UPDATE tx_attempts SET sent_ms = 0 WHERE request_id = {} AND sent_ms IS NOT NULL \
                 AND request_id IN (SELECT id FROM tx_requests WHERE id = {} AND origin <> 'raw' AND state IN ('signed', 'submitted'))",
                d.param(1),
                d.param(2)
            );
            tx.execute(&sql, vec![Bind::text(id.clone()), Bind::text(id.clone())]).await?;
            record_by_id(tx, &id).await
        })
    }
}

async fn apply(
    tx: &mut dyn Tx,
    lease: Option<&Lease>,
    now_ms: u64,
    expires_ms: u64,
    changes: &[TxChange],
) -> Result<usize, StoreError> {
    if let Some(lease) = lease {
        let fence = Fence { key: LeaseKey::signer(lease.chain_id, &lease.sender), token: lease.token };
        crate::leases::check_fence(tx, &fence, Some((now_ms, expires_ms))).await?;
    }
    for change in changes {
        if !change.from.can_become(change.to) && change.from != change.to {
            return Err(StoreError::Database {
                message: format!(
                    "transaction {}: {:?} -> {:?} is not a lifecycle edge",
                    change.id, change.from, change.to
                ),
            });
        }
    }
    let mut applied = 0;
    let mut outbox = Vec::new();
    for chunk in chunks_of_distinct(changes, CHANGE_CHUNK) {
        // Each change applies only if the request is still at the revision it was read at.
        let ids = update_requests(tx, &chunk).await?;
        let done: Vec<&TxChange> = chunk.into_iter().filter(|c| ids.contains(&c.id)).collect();
        applied += done.len();
        let attempts: Vec<(&str, &Attempt)> =
            done.iter().filter_map(|c| c.attempt.as_ref().map(|a| (c.id.as_str(), a))).collect();
        insert_attempts(tx, &attempts).await?;
        let sent: Vec<(&str, u32, u64)> =
            done.iter().filter_map(|c| c.sent.map(|(n, ms)| (c.id.as_str(), n, ms))).collect();
        mark_sent(tx, &sent).await?;
        for change in done.iter().filter(|c| c.to != c.from) {
            if let Some(payload) = &change.payload {
                outbox.push(outbox_row(
                    &change.id,
                    change.revision + 1,
                    change.to,
                    change.chain_id,
                    &change.ordering_key,
                    payload.clone(),
                ));
            }
        }
    }
    tx.insert_outbox(&outbox).await?;
    Ok(applied)
}

/// Changes written per statement (12 parameters each: well below either database's limit).
const CHANGE_CHUNK: usize = 200;

/// `changes` in order, cut into chunks of at most `size` in which no request appears twice (one bulk
/// statement must not update a row twice).
fn chunks_of_distinct(changes: &[TxChange], size: usize) -> Vec<Vec<&TxChange>> {
    let mut chunks: Vec<Vec<&TxChange>> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for change in changes {
        let full = chunks.last().is_none_or(|c| c.len() >= size);
        if full || !ids.insert(change.id.as_str()) {
            chunks.push(Vec::new());
            ids.clear();
            ids.insert(change.id.as_str());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(change);
        }
    }
    chunks
}

/// `(SELECT column1 AS a, column2 AS b ... FROM (VALUES (...), ...) AS vals)`: rows of parameters as a
/// table both databases read (Postgres needs each parameter's type spelled out).
fn values_table(d: Dialect, names: &[(&str, ColumnKind)], rows: usize) -> String {
    let cast = |n: usize, kind: ColumnKind| match (d, kind) {
        (Dialect::Postgres, ColumnKind::Int) => format!("${n}::bigint"),
        (Dialect::Postgres, _) => format!("${n}::text"),
        (Dialect::Sqlite, _) => d.param(n),
    };
    let width = names.len();
    let values = (0..rows)
        .map(|row| {
            let cells = names.iter().enumerate().map(|(i, (_, kind))| cast(row * width + i + 1, *kind));
            format!("({})", cells.collect::<Vec<_>>().join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("column{} AS {name}", i + 1))
        .collect::<Vec<_>>();
    format!("(SELECT {} FROM (VALUES {values}) AS vals)", columns.join(", "))
}

/// Updates the requests of `chunk` that are still at their revision; returns the ids updated.
async fn update_requests(
    tx: &mut dyn Tx,
    chunk: &[&TxChange],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let d = tx.dialect();
    const COLUMNS: [(&str, ColumnKind); 12] = [
        ("id", ColumnKind::Text),
        ("revision", ColumnKind::Int),
        ("state", ColumnKind::Text),
        ("set_inclusion", ColumnKind::Int),
        ("tx_hash", ColumnKind::Text),
        ("block_number", ColumnKind::Int),
        ("block_hash", ColumnKind::Text),
        ("receipt", ColumnKind::Text),
        ("gas_limit", ColumnKind::Int),
        ("error", ColumnKind::Text),
        ("set_ending", ColumnKind::Int),
        ("ending", ColumnKind::Text),
    ];
    let mut binds = Vec::with_capacity(chunk.len() * COLUMNS.len());
    for change in chunk {
        let inclusion = change.inclusion.as_ref().and_then(|i| i.as_ref());
        binds.extend([
            Bind::text(&change.id),
            Bind::int(change.revision),
            Bind::text(change.to.as_str()),
            Bind::int(u64::from(change.inclusion.is_some())),
            Bind::Text(inclusion.map(|i| i.tx_hash.clone())),
            Bind::Int(inclusion.map(|i| i.block_number as i64)),
            Bind::Text(inclusion.map(|i| i.block_hash.clone())),
            Bind::Text(inclusion.map(|i| i.receipt.clone())),
            Bind::Int(change.gas_limit.map(|g| g as i64)),
            Bind::Text(change.error.clone()),
            Bind::int(u64::from(change.ending.is_some())),
            Bind::Text(change.ending.flatten().map(|s| s.as_str().to_string())),
        ]);
    }
    let keep_unless = |flag: &str, column: &str| {
        format!("{column} = CASE WHEN v.{flag} = 1 THEN v.{column} ELSE tx_requests.{column} END")
    };
    let sql = format!(
        "UPDATE tx_requests SET state = v.state, revision = tx_requests.revision + 1, {}, {}, {}, {}, \
         gas_limit = COALESCE(v.gas_limit, tx_requests.gas_limit), error = COALESCE(v.error, tx_requests.error), \
         {}, updated_at = {} \
         FROM {} AS v WHERE tx_requests.id = v.id AND tx_requests.revision = v.revision RETURNING tx_requests.id",
        keep_unless("set_inclusion", "tx_hash"),
        keep_unless("set_inclusion", "block_number"),
        keep_unless("set_inclusion", "block_hash"),
        keep_unless("set_inclusion", "receipt"),
        keep_unless("set_ending", "ending"),
        match d {
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Dialect::Postgres => "now()",
        },
        values_table(d, &COLUMNS, chunk.len())
    );
    let rows = tx.fetch(&sql, binds, &[ColumnKind::Text]).await?;
    Ok(rows.iter().filter_map(|r| text(r, 0)).collect())
}

/// Records when attempts were first sent, in one statement.
async fn mark_sent(tx: &mut dyn Tx, sent: &[(&str, u32, u64)]) -> Result<(), StoreError> {
    if sent.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    const COLUMNS: [(&str, ColumnKind); 3] =
        [("id", ColumnKind::Text), ("attempt", ColumnKind::Int), ("sent_ms", ColumnKind::Int)];
    let binds = sent
        .iter()
        .flat_map(|(id, attempt, ms)| [Bind::text(*id), Bind::int(u64::from(*attempt)), Bind::int(*ms)])
        .collect();
    let sql = format!(
        "UPDATE tx_attempts SET sent_ms = v.sent_ms FROM {} AS v \
         WHERE tx_attempts.request_id = v.id AND tx_attempts.attempt = v.attempt",
        values_table(d, &COLUMNS, sent.len())
    );
    tx.execute(&sql, binds).await?;
    Ok(())
}
