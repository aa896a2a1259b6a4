//! Hybrid reconciliation: projection values derived from events compared with the contracts' own views at
//! one finalized block. Rows last changed above that block are skipped (the next round sees them); a value
//! the view contradicts is drift, recorded with a `drift.detected` message and, with `heal`, corrected in
//! the projection (see the store's `DriftStore`). The built-in Gemforce checks cover carbon-credit
//! balances, token owners and attributes, trade-deal state and amounts, and listings; a `[[snapshots]]` entry with
//! `compare` adds one.

use std::sync::Arc;
use std::time::Instant;

use alloy::json_abi::Function;
use alloy_primitives::Address;
use gemgate_domain::calls::{BlockSelector, CallOutput, PinnedBlock};
use gemgate_domain::ports::DriftStore;
use gemgate_domain::state::Drift;
use gemgate_domain::{ChainId, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;

use crate::abi::{self, AbiError, Catalog};
use crate::proxy::{CallError, CallProxy, ViewCall};
use crate::snapshot::Every;

/// One comparison: a view called with each row's `argument` (or `args` with `"{key}"` for it), its output
/// fields compared with projection columns.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub chain_id: ChainId,
    pub address: Address,
    pub table: String,
    pub argument: String,
    pub function: String,
    pub args: Vec<Value>,
    /// (output field: a dotted path into the decoded outputs, "" for the only output; projection column).
    pub compare: Vec<(String, String)>,
    pub heal: bool,
}

impl Check {
    /// The built-in checks of a Gemforce Diamond.
    pub fn gemforce(chain_id: ChainId, address: Address, heal: bool) -> Vec<Check> {
        let check =
            |name: &str, table: &str, argument: &str, function: &str, compare: &[(&str, &str)]| Check {
                name: name.into(),
                chain_id,
                address,
                table: table.into(),
                argument: argument.into(),
                function: function.into(),
                args: Vec::new(),
                compare: compare.iter().map(|(o, c)| (o.to_string(), c.to_string())).collect(),
                heal,
            };
        vec![
            check(
                "carbon-credit balances",
                "carbon_credits",
                "token_id",
                "carbonCreditBalance",
                &[("", "balance")],
            ),
            check("token owners", "gemforce_tokens", "token_id", "ownerOf", &[("", "owner")]),
            check("token attributes", "gemforce_tokens", "token_id", "getAttributes", &[("", "attributes")]),
            check(
                "trade deals",
                "trade_deals",
                "trade_deal_id",
                "getTradeDeal",
                &[
                    ("v.name", "name"),
                    ("v.symbol", "symbol"),
                    ("v.interestRate", "interest_rate"),
                    ("v.active", "active"),
                    ("v.fundingTarget", "funding_target"),
                    ("v.funded", "funded"),
                    ("v.fullyFunded", "fully_funded"),
                    ("v.withdrawn", "funding_withdrawn"),
                    ("v.repaid", "repaid"),
                    ("v.interestDistributed", "interest_distributed"),
                ],
            ),
            check(
                "listings",
                "listings",
                "item_id",
                "getListing",
                &[
                    ("listing.nftContract", "nft_contract"),
                    ("listing.tokenId", "token_id"),
                    ("listing.seller", "seller"),
                    ("listing.receiver", "receiver"),
                    ("listing.price", "price"),
                    ("listing.paymentToken", "payment_token"),
                ],
            ),
        ]
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabel {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, Default)]
pub struct DriftMetrics {
    pub detected: Family<DriftLabel, Counter>,
    pub healed: Family<DriftLabel, Counter>,
    pub rows_checked: Counter,
}

impl DriftMetrics {
    /// The set under `gemgate_drift_`, registered on first use.
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        metrics.shared("drift", |r| {
            let m = Self::default();
            r.register("detected", "projection values a contract's view contradicted", m.detected.clone());
            r.register("healed", "drifted projection values corrected from the view", m.healed.clone());
            r.register("rows_checked", "projection rows compared with a view", m.rows_checked.clone());
            m
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reconcile {check}: {message}")]
    Config { check: String, message: String },
    #[error("reconcile: {0}")]
    Call(#[from] CallError),
    #[error("reconcile: {0}")]
    Store(#[from] StoreError),
}

/// What a round found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileReport {
    /// (chain, finalized block compared at).
    pub blocks: Vec<(ChainId, PinnedBlock)>,
    pub rows_checked: u64,
    /// Rows left out because they changed above the block.
    pub rows_skipped: u64,
    pub drift: Vec<Drift>,
    pub duration_ms: u64,
}

pub struct Reconciler {
    checks: Vec<(Check, Function)>,
    catalog: Arc<Catalog>,
    proxy: CallProxy,
    store: Arc<dyn DriftStore>,
    batch: usize,
    metrics: DriftMetrics,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("checks", &self.checks.len()).finish()
    }
}

impl Reconciler {
    pub fn new(
        checks: Vec<Check>,
        catalog: Arc<Catalog>,
        proxy: CallProxy,
        store: Arc<dyn DriftStore>,
        batch: usize,
    ) -> Result<Self, ReconcileError> {
        let mut resolved = Vec::new();
        for check in checks {
            let function = catalog
                .function(check.chain_id, check.address, &check.function)
                .map_err(|AbiError(message)| ReconcileError::Config { check: check.name.clone(), message })?;
            resolved.push((check, function));
        }
        let batch = batch.clamp(1, proxy.options().max_batch.max(1));
        Ok(Self { checks: resolved, catalog, proxy, store, batch, metrics: DriftMetrics::default() })
    }

    pub fn with_metrics(mut self, metrics: DriftMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// One round over every check, each chain at its finalized block.
    pub async fn run_once(&self) -> Result<ReconcileReport, ReconcileError> {
        let started = Instant::now();
        let mut report = ReconcileReport::default();
        let mut chains: Vec<ChainId> = self.checks.iter().map(|(c, _)| c.chain_id).collect();
        chains.sort_unstable();
        chains.dedup();
        for chain_id in chains {
            let block = self.proxy.read_block(chain_id, BlockSelector::Finalized).await?;
            report.blocks.push((chain_id, block));
            for (check, function) in self.checks.iter().filter(|(c, _)| c.chain_id == chain_id) {
                self.check(check, function, block, &mut report).await?;
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn check(
        &self,
        check: &Check,
        function: &Function,
        block: PinnedBlock,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let columns: Vec<String> = check.compare.iter().map(|(_, c)| c.clone()).collect();
        let mut after = None;
        loop {
            let rows = self
                .store
                .projected_rows(
                    &check.table,
                    &check.argument,
                    &columns,
                    check.address,
                    after.clone(),
                    self.batch as u32,
                )
                .await?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = Some(last.key.clone());
            let full = rows.len() == self.batch;
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| {
                    let current = r.updated_block.is_none_or(|b| b <= block.number);
                    report.rows_skipped += u64::from(!current);
                    current
                })
                .collect();
            let mut calls = Vec::with_capacity(rows.len());
            for row in &rows {
                let args: Vec<Value> = if check.args.is_empty() {
                    vec![row.argument.clone()]
                } else {
                    check
                        .args
                        .iter()
                        .map(|a| if a == "{key}" { row.argument.clone() } else { a.clone() })
                        .collect()
                };
                let data =
                    abi::encode(function, &args).map_err(|AbiError(message)| ReconcileError::Config {
                        check: check.name.clone(),
                        message: format!("row {}: {message}", row.key),
                    })?;
                calls.push(ViewCall {
                    chain_id: check.chain_id,
                    from: None,
                    to: check.address,
                    data,
                    block: BlockSelector::Hash(block.hash),
                });
            }
            let answers = if calls.is_empty() { Vec::new() } else { self.proxy.call_many(&calls).await? };
            let mut drifts = Vec::new();
            for (row, answer) in rows.iter().zip(answers) {
                report.rows_checked += 1;
                self.metrics.rows_checked.inc();
                let decoded = match answer?.output {
                    CallOutput::Returned(data) => abi::decode_outputs(function, &data),
                    CallOutput::Reverted { data, .. } => {
                        let reason = self.catalog.revert(check.chain_id, check.address, &data).reason;
                        tracing::debug!(check = %check.name, row = %row.key, %reason, "view reverted; not compared");
                        continue;
                    }
                };
                let Some(decoded) = decoded else { continue };
                for ((field, column), projected) in check.compare.iter().zip(&row.values) {
                    let Some(on_chain) = field_of(&decoded, field) else { continue };
                    if !same(projected, &on_chain) {
                        drifts.push(Drift {
                            chain_id: check.chain_id,
                            table: check.table.clone(),
                            key: row.key.clone(),
                            column: column.clone(),
                            projected: projected.clone(),
                            on_chain,
                            block_number: block.number,
                            block_hash: block.hash,
                            healed: check.heal,
                        });
                    }
                }
            }
            if !drifts.is_empty() {
                for drift in self.store.record_drift(&drifts).await? {
                    let label = DriftLabel { table: drift.table.clone(), column: drift.column.clone() };
                    self.metrics.detected.get_or_create(&label).inc();
                    if drift.healed {
                        self.metrics.healed.get_or_create(&label).inc();
                    }
                    tracing::warn!(
                        table = %drift.table, key = %drift.key, column = %drift.column, projected = %drift.projected,
                        on_chain = %drift.on_chain, block = drift.block_number, healed = drift.healed,
                        "drift: the projection differs from the contract's view"
                    );
                    report.drift.push(drift);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Rounds on the schedule until `stop` resolves (the first at start).
    pub async fn run_on_schedule(&self, every: Every, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let (mut last_block, mut last_at): (Option<u64>, Option<Instant>) = (None, None);
        loop {
            let due = match every {
                Every::Interval(every) => last_at.is_none_or(|at| at.elapsed() >= every),
                Every::Blocks(n) => {
                    let chain = self.checks.first().map(|(c, _)| c.chain_id).unwrap_or_default();
                    match self.proxy.read_block(chain, BlockSelector::Finalized).await {
                        Ok(head) => last_block.is_none_or(|last| head.number >= last + n),
                        Err(_) => false,
                    }
                }
            };
            let mut pause = std::time::Duration::from_secs(1);
            if due {
                match self.run_once().await {
                    Ok(report) => {
                        tracing::info!(
                            rows = report.rows_checked,
                            skipped = report.rows_skipped,
                            drift = report.drift.len(),
                            ms = report.duration_ms,
                            "reconciliation round complete"
                        );
                        last_block = report.blocks.first().map(|(_, b)| b.number);
                        last_at = Some(Instant::now());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reconciliation round failed; trying again later");
                        pause = std::time::Duration::from_secs(5);
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// A field of decoded outputs: "" is the only (or first) output, "v.funded" a path through tuples.
fn field_of(decoded: &Value, path: &str) -> Option<Value> {
    if path.is_empty() {
        return decoded.as_object().and_then(|o| o.values().next()).cloned();
    }
    path.split('.').try_fold(decoded, |value, part| value.get(part)).cloned()
}

/// Projection and view values compared as text: numbers as decimals, addresses without their case; lists
/// and tuples (token attributes) element by element, whatever order the database gave their keys; no
/// value and an empty list are the same (a token whose mint carried no attributes).
fn same(projected: &Value, on_chain: &Value) -> bool {
    match (projected, on_chain) {
        (Value::Null, Value::Array(b)) => return b.is_empty(),
        (Value::Array(a), Value::Array(b)) => {
            return a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b));
        }
        (Value::Object(a), Value::Object(b)) => {
            return a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)));
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => return false,
        _ => {}
    }
    let text = |v: &Value| match v {
        Value::String(s) if s.len() == 42 && s.starts_with("0x") => s.to_lowercase(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(projected) == text(on_chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_and_comparison() {
        let decoded = json!({"v": {"funded": "10", "active": true}});
        assert_eq!(field_of(&decoded, "v.funded"), Some(json!("10")));
        assert_eq!(field_of(&json!({"arg0": "0xAb"}), ""), Some(json!("0xAb")));
        assert_eq!(field_of(&decoded, "v.missing"), None);
        let address = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
        assert!(same(&json!(address), &json!(address.to_lowercase())));
        assert!(!same(&json!("Deal A"), &json!("deal a")), "names keep their case");
        assert!(same(&json!(5), &json!("5")) && same(&json!(true), &json!(true)));
        assert!(!same(&json!("5"), &json!("6")));
        let attributes = json!([{"key": "name", "attributeType": "0", "value": "Gem"}]);
        let reordered = json!([{"value": "Gem", "attributeType": "0", "key": "name"}]);
        assert!(same(&attributes, &reordered), "key order is the database's, not a difference");
        assert!(!same(&attributes, &json!([{"key": "name", "attributeType": "0", "value": "gem"}])));
        assert!(!same(&attributes, &json!([])) && !same(&attributes, &json!("[]")));
    }
}
