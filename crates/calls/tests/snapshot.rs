//! A contract-state snapshot run whose pinned block is reorged away in the middle (a real `anvil_reorg`,
//! fired while the run stages its first batch): the run is recorded abandoned, the table keeps the last
//! complete run's rows, and the next run completes at the new canonical block. Real anvil, real SQLite.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy_primitives::Address;
use async_trait::async_trait;
use gemgate_calls::snapshot::{Every, SnapshotError, SnapshotJob, SnapshotSpec};
use gemgate_calls::{CallOptions, CallProxy, Catalog};
use gemgate_chain::{RetryPolicy, TxRpc};
use gemgate_domain::calls::{BlockSelector, PinnedBlock};
use gemgate_domain::ports::{StateSnapshots, ViewCaller};
use gemgate_domain::state::{RunStats, StateRow, StateRun};
use gemgate_domain::{ChainId, StoreError};
use gemgate_projections::gemforce::gemforce_abis;
use gemgate_projections::gemforce::tables::CARBON_CREDITS;
use gemgate_projections::{Cell, ProjectionSet, Row, RowWrite};
use gemgate_store::SqlStore;
use gemgate_testkit::{Anvil, AnvilOptions, MULTICALL3, anvil_or_skip, deploy_gemforce};

/// The real store, with a reorg of the chain's head fired the first time a batch is staged while armed.
struct ReorgWhileStaging {
    store: SqlStore,
    anvil: Arc<Anvil>,
    armed: AtomicBool,
}

#[async_trait]
impl StateSnapshots for ReorgWhileStaging {
    async fn begin_state_run(
        &self,
        name: &str,
        table: &str,
        chain_id: ChainId,
        block: PinnedBlock,
    ) -> Result<u64, StoreError> {
        self.store.begin_state_run(name, table, chain_id, block).await
    }
    async fn stage_state_rows(
        &self,
        table: &str,
        block: PinnedBlock,
        rows: &[StateRow],
    ) -> Result<(), StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.anvil.reorg(1).await.unwrap();
        }
        self.store.stage_state_rows(table, block, rows).await
    }
    async fn finish_state_run(&self, run: u64, table: &str, stats: RunStats) -> Result<(), StoreError> {
        self.store.finish_state_run(run, table, stats).await
    }
    async fn abandon_state_run(
        &self,
        run: u64,
        table: &str,
        stats: RunStats,
        error: &str,
    ) -> Result<(), StoreError> {
        self.store.abandon_state_run(run, table, stats, error).await
    }
    async fn projection_values(
        &self,
        table: &str,
        column: &str,
        address: Address,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.store.projection_values(table, column, address, after, limit).await
    }
    async fn state_runs(&self, name: Option<&str>, limit: u32) -> Result<Vec<StateRun>, StoreError> {
        self.store.state_runs(name, limit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_of_the_pinned_block_abandons_the_run_and_the_next_one_completes() {
    let test = "a_reorg_of_the_pinned_block_abandons_the_run_and_the_next_one_completes";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let anvil = Arc::new(anvil);
    let d = deploy_gemforce(&anvil.provider(), anvil.accounts()[0]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let store = SqlStore::connect(&url, 2, ProjectionSet::gemforce()).await.unwrap();
    store.migrate().await.unwrap();
    // Ten tokens in the projection the keys come from (no credits: each balance reads 0).
    let contract = d.diamond.to_checksum(None);
    let writes: Vec<RowWrite> = (1..=10u64)
        .map(|token| RowWrite {
            table: &CARBON_CREDITS,
            key: format!("31337:{contract}:{token}"),
            row: Some(Row::from([
                ("contract".to_string(), Cell::Text(contract.clone())),
                ("token_id".to_string(), Cell::Num(alloy_primitives::U256::from(token))),
            ])),
        })
        .collect();
    store.write_rows(&writes).await.unwrap();

    let url: url::Url = anvil.endpoint().parse().unwrap();
    let caller: Arc<dyn ViewCaller> =
        Arc::new(TxRpc::new(31337, vec![(url.clone(), url.to_string())], RetryPolicy::default()));
    let options =
        CallOptions { cache_bytes: 1 << 20, max_batch: 100, head_max_age: std::time::Duration::ZERO };
    let proxy = CallProxy::new(vec![(caller, Some(MULTICALL3))], options);
    let mut catalog = Catalog::default();
    catalog.add("gemforce", 31337, d.diamond, &gemforce_abis());
    let hooked = Arc::new(ReorgWhileStaging {
        store: store.clone(),
        anvil: anvil.clone(),
        armed: AtomicBool::new(false),
    });
    let spec = SnapshotSpec {
        name: "credits".into(),
        table: "snapshot_credits".into(),
        chain_id: 31337,
        address: d.diamond,
        function: "carbonCreditBalance".into(),
        args: Vec::new(),
        keys: Some(("carbon_credits".into(), "token_id".into())),
        block: BlockSelector::Latest,
        batch: 3,
        every: Every::Blocks(1),
    };
    let job = SnapshotJob::new(spec, Arc::new(catalog), proxy, hooked.clone()).unwrap();

    let first = job.run(|_| {}).await.unwrap();
    assert_eq!(
        (first.state.as_str(), first.stats.rows, first.stats.batches),
        ("complete", 10, 4),
        "{first:?}"
    );

    anvil.mine(1).await.unwrap();
    hooked.armed.store(true, Ordering::SeqCst);
    let error = job.run(|_| {}).await.unwrap_err();
    assert!(matches!(error, SnapshotError::Reorged { .. }), "{error}");
    let runs = store.state_runs(Some("credits"), 10).await.unwrap();
    assert_eq!(runs[0].state, "abandoned", "{runs:?}");
    assert!(runs[0].error.as_deref().is_some_and(|e| e.contains("reorged")), "{runs:?}");
    let kept = block_hashes(&store).await;
    assert_eq!(kept, vec![first.block_hash.to_string()], "the table keeps the last complete run's rows");

    let again = job.run(|_| {}).await.unwrap();
    let canonical = anvil.provider();
    use alloy::providers::Provider;
    let block = canonical.get_block_by_number(again.block_number.into()).await.unwrap().unwrap();
    assert_eq!(again.block_hash, block.header.hash, "the new run read the canonical block");
    assert_eq!(block_hashes(&store).await, vec![again.block_hash.to_string()]);
    assert_eq!(again.stats.rows, 10);
}

async fn block_hashes(store: &SqlStore) -> Vec<String> {
    let mut tx = store.begin().await.unwrap();
    let rows = tx
        .tx()
        .fetch(
            "SELECT DISTINCT block_hash FROM snapshot_credits",
            Vec::new(),
            &[gemgate_projections::ColumnKind::Text],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r[0].as_text().unwrap().to_string()).collect()
}
