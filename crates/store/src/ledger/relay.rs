//! The relayer's rows: the ERC-2771 requests a transaction carries (written by `accept_all` in the accepting
//! database transaction) and its quotas, charged all-or-nothing with a conditional upsert per bucket.

use gemgate_domain::relay::QuotaCharge;

use super::*;

const RELAYED: [(&str, ColumnKind); 7] = [
    ("tx_id", ColumnKind::Text),
    ("position", ColumnKind::Int),
    ("digest", ColumnKind::Text),
    ("relayer", ColumnKind::Text),
    ("meta_from", ColumnKind::Text),
    ("meta_to", ColumnKind::Text),
    ("meta_nonce", ColumnKind::Text),
];

/// Stores relayed requests (transaction id, request, position in the transaction) in one statement.
pub(super) async fn insert_relayed(
    tx: &mut dyn Tx,
    rows: &[(&str, &RelayedCall, usize)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = RELAYED.len() + 1;
    let values = value_rows(tx.dialect(), rows.len(), width, |_, param| param);
    let names: Vec<&str> = RELAYED.iter().map(|(c, _)| *c).collect();
    let sql = format!("INSERT INTO relay_requests ({}, deadline) VALUES {values}", names.join(", "));
    let binds = rows
        .iter()
        .flat_map(|(id, call, position)| {
            [
                Bind::text(*id),
                Bind::int(*position as u64),
                Bind::text(&call.digest),
                Bind::text(&call.relayer),
                Bind::text(&call.from),
                Bind::text(&call.to),
                Bind::text(&call.nonce),
                Bind::int(call.deadline),
            ]
        })
        .collect();
    tx.execute(&sql, binds).await?;
    Ok(())
}

impl SqlStore {
    /// The transaction relaying the request with EIP-712 digest `digest`.
    pub async fn transaction_relaying(&self, digest: &str) -> Result<Option<TxRecord>, StoreError> {
        let digest = digest.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let sql = format!(
                    "SELECT {} FROM tx_requests WHERE id = (SELECT tx_id FROM relay_requests WHERE digest = {})",
                    columns(d),
                    d.param(1)
                );
                let rows = tx.fetch(&sql, vec![Bind::text(digest)], &kinds(&RECORD)).await?;
                rows.first().map(|r| record(r)).transpose()
            })
        })
        .await
    }

    /// The ERC-2771 requests transaction `id` relays, in the order it carries them.
    pub async fn relayed(&self, id: &str) -> Result<Vec<RelayedCall>, StoreError> {
        let id = id.to_string();
        self.with_tx(move |tx| {
            Box::pin(async move {
                let d = tx.dialect();
                let mut kinds = kinds(&RELAYED);
                kinds.push(ColumnKind::Int);
                let names: Vec<&str> = RELAYED.iter().map(|(c, _)| *c).collect();
                let sql = format!(
                    "SELECT {}, deadline FROM relay_requests WHERE tx_id = {} ORDER BY position",
                    names.join(", "),
                    d.param(1)
                );
                let rows = tx.fetch(&sql, vec![Bind::text(id)], &kinds).await?;
                Ok(rows
                    .iter()
                    .map(|r| RelayedCall {
                        digest: text(r, 2).unwrap_or_default(),
                        relayer: text(r, 3).unwrap_or_default(),
                        from: text(r, 4).unwrap_or_default(),
                        to: text(r, 5).unwrap_or_default(),
                        nonce: text(r, 6).unwrap_or_default(),
                        deadline: int(r, 7).unwrap_or_default(),
                    })
                    .collect())
            })
        })
        .await
    }

    /// Charges every quota or none (see `RelayQuotas::charge`). Each charge is an upsert that only adds
    /// while the total stays within the limit; the row it touches stays locked until the commit, so two
    /// charges of one bucket (on any replica) are serialized and never pass the limit together.
    pub async fn charge_quotas(&self, charges: &[QuotaCharge]) -> Result<Option<usize>, StoreError> {
        if charges.is_empty() {
            return Ok(None);
        }
        let mut owned = self.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let p = |n| d.param(n);
        let sql = format!(
            "INSERT INTO relay_quotas (bucket, window_start, used) SELECT {}, {}, {} WHERE {} <= {} \
             ON CONFLICT (bucket, window_start) DO UPDATE SET used = relay_quotas.used + excluded.used \
             WHERE relay_quotas.used + excluded.used <= {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        for (i, charge) in charges.iter().enumerate() {
            let binds = vec![
                Bind::text(&charge.bucket),
                Bind::int(charge.window_start),
                Bind::int(charge.amount),
                Bind::int(charge.amount),
                Bind::int(charge.limit),
                Bind::int(charge.limit),
            ];
            if tx.execute(&sql, binds).await? == 0 {
                // Dropping `owned` rolls back the charges made so far.
                return Ok(Some(i));
            }
        }
        owned.commit().await?;
        Ok(None)
    }

    /// Gives charges back, never below zero.
    pub async fn refund_quotas(&self, charges: &[QuotaCharge]) -> Result<(), StoreError> {
        if charges.is_empty() {
            return Ok(());
        }
        let mut owned = self.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let greatest = match d {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "GREATEST",
        };
        let sql = format!(
            "UPDATE relay_quotas SET used = {greatest}(used - {}, 0) WHERE bucket = {} AND window_start = {}",
            d.param(1),
            d.param(2),
            d.param(3)
        );
        for charge in charges {
            let binds =
                vec![Bind::int(charge.amount), Bind::text(&charge.bucket), Bind::int(charge.window_start)];
            tx.execute(&sql, binds).await?;
        }
        owned.commit().await
    }
}

#[async_trait::async_trait]
impl gemgate_domain::ports::RelayQuotas for SqlStore {
    #[tracing::instrument(level = "debug", skip_all, fields(charges = charges.len()))]
    async fn charge(&self, charges: &[QuotaCharge]) -> Result<Option<usize>, StoreError> {
        self.charge_quotas(charges).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(charges = charges.len()))]
    async fn refund(&self, charges: &[QuotaCharge]) -> Result<(), StoreError> {
        self.refund_quotas(charges).await
    }
}
