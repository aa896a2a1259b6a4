//! Leases with fencing tokens (`leases` table) for every part that runs once per database at a time: a
//! chain's indexer, a sink's dispatcher, a signer's transaction worker; and each process's heartbeat.
//!
//! Taking a lease is one upsert: granted when the row is free, expired or already ours, and a change of
//! holder raises the token. A write made under a lease calls `check_fence` first in its own transaction:
//! on Postgres the check row-locks the lease, so a takeover waits until that write has committed, and a
//! write that comes after a takeover finds a newer token and is refused (`StoreError::Fenced`).

use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_domain::cluster::{Fence, LeaseKey, LeaseRecord, LeaseRole};
use gemgate_domain::ports::Leases;
use gemgate_projections::{Cell, ColumnKind};

use crate::conn::{Bind, db_error};
use crate::write::Tx;
use crate::{Pool, SqlStore};

/// Takes or renews `key` for `holder` until `now_ms + ttl_ms`; `None` while another holder's lease runs.
pub(crate) async fn acquire(
    tx: &mut dyn Tx,
    key: &LeaseKey,
    holder: &str,
    detail: Option<&str>,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Option<Fence>, StoreError> {
    let d = tx.dialect();
    let p: Vec<String> = (1..=7).map(|i| d.param(i)).collect();
    let sql = format!(
        "INSERT INTO leases (role, name, holder, token, acquired_ms, renewed_ms, expires_ms, detail) \
         VALUES ({p1}, {p2}, {p3}, 1, {p4}, {p4}, {p5}, {p6}) \
         ON CONFLICT (role, name) DO UPDATE SET \
           token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
           acquired_ms = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms >= {p7} \
             THEN leases.acquired_ms ELSE excluded.acquired_ms END, \
           holder = excluded.holder, renewed_ms = excluded.renewed_ms, expires_ms = excluded.expires_ms, \
           detail = excluded.detail \
         WHERE leases.holder = excluded.holder OR leases.expires_ms < {p7} \
         RETURNING token",
        p1 = p[0],
        p2 = p[1],
        p3 = p[2],
        p4 = p[3],
        p5 = p[4],
        p6 = p[5],
        p7 = p[6],
    );
    let binds = vec![
        Bind::text(key.role.as_str()),
        Bind::text(&key.name),
        Bind::text(holder),
        Bind::int(now_ms),
        Bind::int(now_ms + ttl_ms),
        Bind::Text(detail.map(str::to_string)),
        Bind::int(now_ms),
    ];
    let rows = tx.fetch(&sql, binds, &[ColumnKind::Int]).await?;
    Ok(rows.first().and_then(|r| r.first()).map(|c| Fence { key: key.clone(), token: crate::cells::int(c) }))
}

/// Fails with `Fenced` unless `fence` is still the lease's token; on Postgres the lease stays row-locked
/// until the transaction ends, so nobody takes it over while this write commits. With `renew_until`, the
/// lease is extended to it as well.
pub(crate) async fn check_fence(
    tx: &mut dyn Tx,
    fence: &Fence,
    renew_until: Option<(u64, u64)>,
) -> Result<(), StoreError> {
    let d = tx.dialect();
    let (set, mut binds) = match renew_until {
        Some((now_ms, expires_ms)) => (
            format!("renewed_ms = {}, expires_ms = {}", d.param(4), d.param(5)),
            vec![Bind::int(now_ms), Bind::int(expires_ms)],
        ),
        None => ("token = token".to_string(), Vec::new()),
    };
    binds.splice(
        0..0,
        [Bind::text(fence.key.role.as_str()), Bind::text(&fence.key.name), Bind::int(fence.token)],
    );
    let sql = format!(
        "UPDATE leases SET {set} WHERE role = {} AND name = {} AND token = {}",
        d.param(1),
        d.param(2),
        d.param(3)
    );
    if tx.execute(&sql, binds).await? == 1 {
        return Ok(());
    }
    let sql = format!("SELECT token FROM leases WHERE role = {} AND name = {}", d.param(1), d.param(2));
    let rows = tx
        .fetch(
            &sql,
            vec![Bind::text(fence.key.role.as_str()), Bind::text(&fence.key.name)],
            &[ColumnKind::Int],
        )
        .await?;
    Err(StoreError::Fenced {
        resource: fence.key.to_string(),
        current: rows.first().and_then(|r| r.first()).map_or(0, crate::cells::int),
    })
}

/// Checks `fence` when there is one (see `check_fence`).
pub(crate) async fn check(tx: &mut dyn Tx, fence: Option<&Fence>) -> Result<(), StoreError> {
    match fence {
        Some(fence) => check_fence(tx, fence, None).await,
        None => Ok(()),
    }
}

#[async_trait]
impl Leases for SqlStore {
    async fn acquire(
        &self,
        key: &LeaseKey,
        holder: &str,
        detail: Option<&str>,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, StoreError> {
        in_tx!(self, tx => acquire(tx, key, holder, detail, now_ms, ttl_ms).await)
    }

    async fn renew(&self, fence: &Fence, now_ms: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        let renewed = in_tx!(self, tx => check_fence(tx, fence, Some((now_ms, now_ms + ttl_ms))).await);
        match renewed {
            Ok(()) => Ok(true),
            Err(StoreError::Fenced { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn release(&self, fence: &Fence, now_ms: u64) -> Result<(), StoreError> {
        // Expired now, keeping the token: the next holder raises it.
        match in_tx!(self, tx => check_fence(tx, fence, Some((now_ms, 0))).await) {
            Ok(()) | Err(StoreError::Fenced { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let sql = "SELECT role, name, holder, token, acquired_ms, renewed_ms, expires_ms, detail FROM leases \
                   ORDER BY role, name";
        let kinds = [
            ColumnKind::Text,
            ColumnKind::Text,
            ColumnKind::Text,
            ColumnKind::Int,
            ColumnKind::Int,
            ColumnKind::Int,
            ColumnKind::Int,
            ColumnKind::Text,
        ];
        let rows =
            self.with_tx(|tx| Box::pin(async move { tx.fetch(sql, Vec::new(), &kinds).await })).await?;
        let text = |c: &Cell| c.as_text().map(str::to_string);
        Ok(rows
            .iter()
            .filter_map(|r| {
                let role = LeaseRole::parse(r[0].as_text()?)?;
                Some(LeaseRecord {
                    key: LeaseKey { role, name: text(&r[1])? },
                    holder: text(&r[2]).unwrap_or_default(),
                    token: crate::cells::int(&r[3]),
                    acquired_ms: crate::cells::int(&r[4]),
                    renewed_ms: crate::cells::int(&r[5]),
                    expires_ms: crate::cells::int(&r[6]),
                    detail: text(&r[7]),
                })
            })
            .collect())
    }
}
