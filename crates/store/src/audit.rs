//! The audit log of API writes (`audit_log`): one row per write, appended after it was answered.

use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_domain::ports::{AuditEntry, AuditLog};
use gemgate_projections::ColumnKind;

use crate::conn::{Bind, db_error};
use crate::write::Tx;
use crate::{Pool, SqlStore};

#[async_trait]
impl AuditLog for SqlStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let d = tx.dialect();
            let sql = format!(
                "INSERT INTO audit_log (at_ms, caller, method, path, status) VALUES ({}, {}, {}, {}, {})",
                d.param(1),
                d.param(2),
                d.param(3),
                d.param(4),
                d.param(5)
            );
            let binds = vec![
                Bind::int(entry.at_ms),
                Bind::text(&entry.caller),
                Bind::text(&entry.method),
                Bind::text(&entry.path),
                Bind::int(u64::from(entry.status)),
            ];
            tx.execute(&sql, binds).await.map(|_| ())
        })
    }

    async fn audit_entries(&self, before: Option<u64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let kinds = [
            ColumnKind::Int,
            ColumnKind::Int,
            ColumnKind::Text,
            ColumnKind::Text,
            ColumnKind::Text,
            ColumnKind::Int,
        ];
        let rows = self
            .with_tx(|tx| {
                Box::pin(async move {
                    let d = tx.dialect();
                    let sql = format!(
                        "SELECT id, at_ms, caller, method, path, status FROM audit_log WHERE id < {} \
                         ORDER BY id DESC LIMIT {}",
                        d.param(1),
                        d.param(2)
                    );
                    let binds =
                        vec![Bind::int(before.unwrap_or(i64::MAX as u64)), Bind::int(u64::from(limit))];
                    tx.fetch(&sql, binds, &kinds).await
                })
            })
            .await?;
        let text = |c: &gemgate_projections::Cell| c.as_text().unwrap_or_default().to_string();
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: crate::cells::int(&r[0]),
                at_ms: crate::cells::int(&r[1]),
                caller: text(&r[2]),
                method: text(&r[3]),
                path: text(&r[4]),
                status: crate::cells::int(&r[5]) as u16,
            })
            .collect())
    }
}
