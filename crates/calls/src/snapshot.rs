//! Contract-state snapshot runs (`[[snapshots]]`): one view function called for every key (the values of
//! a projection column, or fixed arguments) at one pinned block, in Multicall3 batches through the proxy,
//! each batch staged in the database as it comes (memory holds one batch), and the rows swapped in whole
//! when every call is answered and the block is still canonical. A run whose block is reorged away, or
//! whose calls fail, is recorded abandoned and leaves the last complete run's rows in place.

use std::sync::Arc;
use std::time::Instant;

use alloy::json_abi::Function;
use alloy_primitives::Address;
use gemgate_domain::calls::{BlockSelector, CallOutput, PinnedBlock};
use gemgate_domain::ports::StateSnapshots;
use gemgate_domain::state::{RunStats, StateRow, StateRun};
use gemgate_domain::{ChainId, StoreError};
use serde_json::Value;

use crate::abi::{self, AbiError, Catalog};
use crate::proxy::{CallError, CallProxy, ViewCall};

/// What a run reads.
#[derive(Debug, Clone)]
pub struct SnapshotSpec {
    pub name: String,
    pub table: String,
    pub chain_id: ChainId,
    pub address: Address,
    /// A function name or signature, resolved against the contract's ABI.
    pub function: String,
    /// The arguments; with `keys`, `"{key}"` stands for each key (no arguments: the key alone).
    pub args: Vec<Value>,
    /// (projection table, column) whose values are the keys.
    pub keys: Option<(String, String)>,
    /// `latest`, `safe` or `finalized`: the block a run pins.
    pub block: BlockSelector,
    pub batch: usize,
    pub every: Every,
}

/// How often a snapshot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// When the pinned level's head is this many blocks past the last complete run's block.
    Blocks(u64),
    Interval(std::time::Duration),
}

/// How often the schedule looks at the chain.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// The pause after a failed run before the next try.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {name}: {message}")]
    Config { name: String, message: String },
    #[error("snapshot {name}: block {number} ({hash}) was reorged away during the run; it runs again")]
    Reorged { name: String, number: u64, hash: alloy_primitives::B256 },
    #[error("snapshot {name}: {source}")]
    Call { name: String, source: CallError },
    #[error("snapshot {name}: {source}")]
    Store { name: String, source: StoreError },
}

/// How far a run has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    pub block: PinnedBlock,
    pub rows: u64,
}

/// One configured snapshot, ready to run.
#[derive(Clone)]
pub struct SnapshotJob {
    spec: SnapshotSpec,
    function: Function,
    catalog: Arc<Catalog>,
    proxy: CallProxy,
    store: Arc<dyn StateSnapshots>,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob").field("spec", &self.spec).finish()
    }
}

impl SnapshotJob {
    /// Resolves the function and checks the arguments encode (with a placeholder key).
    pub fn new(
        spec: SnapshotSpec,
        catalog: Arc<Catalog>,
        proxy: CallProxy,
        store: Arc<dyn StateSnapshots>,
    ) -> Result<Self, SnapshotError> {
        let name = spec.name.clone();
        let config = |message: String| SnapshotError::Config { name: name.clone(), message };
        let function =
            catalog.function(spec.chain_id, spec.address, &spec.function).map_err(|AbiError(e)| config(e))?;
        if spec.keys.is_none() && spec.args.iter().any(|a| a == "{key}") {
            return Err(config("args: \"{key}\" needs keys = { table, column }".into()));
        }
        let job = Self { spec, function, catalog, proxy, store };
        if job.spec.keys.is_none() {
            abi::encode(&job.function, &job.args_for(None)).map_err(|AbiError(e)| config(e))?;
        }
        Ok(job)
    }

    pub fn spec(&self) -> &SnapshotSpec {
        &self.spec
    }

    /// Runs at start and then on the schedule until `stop` resolves. A run abandoned because its block was
    /// reorged away runs again at once; one that failed otherwise, after a pause.
    pub async fn run_on_schedule(&self, stop: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(stop);
        let spec = &self.spec;
        let last = self
            .store
            .state_runs(Some(&spec.name), 20)
            .await
            .ok()
            .and_then(|runs| runs.into_iter().find(|r| r.state == "complete").map(|r| r.block_number));
        let (mut last_block, mut last_at): (Option<u64>, Option<Instant>) = (last, None);
        loop {
            let due = match spec.every {
                Every::Interval(every) => last_at.is_none_or(|at| at.elapsed() >= every),
                Every::Blocks(n) => match self.proxy.read_block(spec.chain_id, spec.block).await {
                    Ok(head) => last_block.is_none_or(|last| head.number >= last + n),
                    Err(error) => {
                        tracing::warn!(snapshot = %spec.name, %error, "reading the head for the schedule failed");
                        false
                    }
                },
            };
            let mut pause = SCHEDULE_TICK;
            if due {
                match self.run(|_| {}).await {
                    Ok(run) => {
                        tracing::info!(
                            snapshot = %spec.name, block = run.block_number, rows = run.stats.rows,
                            batches = run.stats.batches, ms = run.stats.duration_ms, "snapshot run complete"
                        );
                        (last_block, last_at) = (Some(run.block_number), Some(Instant::now()));
                    }
                    Err(error @ SnapshotError::Reorged { .. }) => {
                        tracing::warn!(%error);
                        pause = std::time::Duration::ZERO;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "snapshot run failed; trying again later");
                        pause = RETRY_AFTER;
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The call's arguments for one key.
    fn args_for(&self, key: Option<&Value>) -> Vec<Value> {
        match key {
            None => self.spec.args.clone(),
            Some(key) if self.spec.args.is_empty() => vec![key.clone()],
            Some(key) => {
                self.spec.args.iter().map(|a| if a == "{key}" { key.clone() } else { a.clone() }).collect()
            }
        }
    }

    /// One run: pin the block, call for every key in batches, stage each batch, swap in. Returns the
    /// completed run; a reorg of the pinned block or a failed call abandons it (recorded) and is an error.
    pub async fn run(
        &self,
        mut progress: impl FnMut(&RunProgress) + Send,
    ) -> Result<StateRun, SnapshotError> {
        let name = self.spec.name.clone();
        let store_error = |source| SnapshotError::Store { name: name.clone(), source };
        let call_error = |source| SnapshotError::Call { name: name.clone(), source };
        let started = Instant::now();
        let block = self.proxy.read_block(self.spec.chain_id, self.spec.block).await.map_err(call_error)?;
        let run = self
            .store
            .begin_state_run(&self.spec.name, &self.spec.table, self.spec.chain_id, block)
            .await
            .map_err(store_error)?;
        let mut stats = RunStats::default();
        let outcome = self.calls(block, &mut stats, &mut progress).await;
        let outcome = match outcome {
            Ok(()) => self.still_canonical(block).await,
            // A node asked about a block it no longer has fails the call: say so when that is why.
            Err(error @ SnapshotError::Call { .. }) => match self.still_canonical(block).await {
                Err(reorged @ SnapshotError::Reorged { .. }) => Err(reorged),
                _ => Err(error),
            },
            Err(e) => Err(e),
        };
        stats.duration_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(()) => {
                self.store.finish_state_run(run, &self.spec.table, stats).await.map_err(store_error)?;
                let runs = self.store.state_runs(Some(&self.spec.name), 1).await.map_err(store_error)?;
                runs.into_iter()
                    .next()
                    .ok_or_else(|| store_error(StoreError::Database { message: "run vanished".into() }))
            }
            Err(error) => {
                let recorded =
                    self.store.abandon_state_run(run, &self.spec.table, stats, &error.to_string()).await;
                if let Err(e) = recorded {
                    tracing::warn!(snapshot = %self.spec.name, error = %e, "recording the abandoned run failed");
                }
                Err(error)
            }
        }
    }

    async fn still_canonical(&self, block: PinnedBlock) -> Result<(), SnapshotError> {
        let now = self
            .proxy
            .read_block(self.spec.chain_id, BlockSelector::Number(block.number))
            .await
            .map_err(|source| SnapshotError::Call { name: self.spec.name.clone(), source })?;
        if now.hash == block.hash {
            Ok(())
        } else {
            Err(SnapshotError::Reorged {
                name: self.spec.name.clone(),
                number: block.number,
                hash: block.hash,
            })
        }
    }

    /// Every batch of keys, called while the previous batch is staged (the node and the database work
    /// side by side; memory holds two batches).
    async fn calls(
        &self,
        block: PinnedBlock,
        stats: &mut RunStats,
        progress: &mut (impl FnMut(&RunProgress) + Send),
    ) -> Result<(), SnapshotError> {
        let name = &self.spec.name;
        let Some((table, column)) = &self.spec.keys else {
            let rows = self.call_batch(block, &[None]).await?;
            return self.stage(block, rows, stats, progress).await;
        };
        let mut after = None;
        let mut answered: Option<Vec<StateRow>> = None;
        loop {
            let page = self
                .store
                .projection_values(table, column, self.spec.address, after.clone(), self.spec.batch as u32)
                .await
                .map_err(|source| SnapshotError::Store { name: name.clone(), source })?;
            let full = page.len() == self.spec.batch;
            after = page.last().map(|(key, _)| key.clone());
            let keys: Vec<Option<Value>> = page.into_iter().map(|(_, value)| Some(value)).collect();
            let staging = async {
                match answered.take() {
                    Some(rows) => self.stage(block, rows, stats, progress).await,
                    None => Ok(()),
                }
            };
            let calling = async {
                match keys.is_empty() {
                    true => Ok(None),
                    false => self.call_batch(block, &keys).await.map(Some),
                }
            };
            let (staged, called) = tokio::join!(staging, calling);
            staged?;
            answered = called?;
            if !full {
                if let Some(rows) = answered.take() {
                    self.stage(block, rows, stats, progress).await?;
                }
                return Ok(());
            }
        }
    }

    /// Calls for one batch of keys (`None`: the fixed arguments) at `block`: the rows to stage.
    async fn call_batch(
        &self,
        block: PinnedBlock,
        keys: &[Option<Value>],
    ) -> Result<Vec<StateRow>, SnapshotError> {
        let name = &self.spec.name;
        let mut args = Vec::with_capacity(keys.len());
        let mut calls = Vec::with_capacity(keys.len());
        for key in keys {
            let values = self.args_for(key.as_ref());
            let data =
                abi::encode(&self.function, &values).map_err(|AbiError(message)| SnapshotError::Config {
                    name: name.clone(),
                    message: format!("key {}: {message}", key.clone().unwrap_or_default()),
                })?;
            calls.push(ViewCall {
                chain_id: self.spec.chain_id,
                from: None,
                to: self.spec.address,
                data,
                block: BlockSelector::Hash(block.hash),
            });
            args.push(Value::Array(values));
        }
        let answers = self
            .proxy
            .call_many(&calls)
            .await
            .map_err(|source| SnapshotError::Call { name: name.clone(), source })?;
        let mut rows = Vec::with_capacity(answers.len());
        for (args, answer) in args.into_iter().zip(answers) {
            let answer = answer.map_err(|source| match source {
                CallError::NoSuchBlock { .. } => {
                    SnapshotError::Reorged { name: name.clone(), number: block.number, hash: block.hash }
                }
                source => SnapshotError::Call { name: name.clone(), source },
            })?;
            let (value, reverted) = match &answer.output {
                CallOutput::Returned(data) => (abi::decode_outputs(&self.function, data), None),
                CallOutput::Reverted { data, .. } => {
                    (None, Some(self.catalog.revert(self.spec.chain_id, self.spec.address, data).reason))
                }
            };
            rows.push(StateRow { key: args.to_string(), args, value, reverted });
        }
        Ok(rows)
    }

    /// Stages one batch's rows and counts them.
    async fn stage(
        &self,
        block: PinnedBlock,
        rows: Vec<StateRow>,
        stats: &mut RunStats,
        progress: &mut (impl FnMut(&RunProgress) + Send),
    ) -> Result<(), SnapshotError> {
        self.store
            .stage_state_rows(&self.spec.table, block, &rows)
            .await
            .map_err(|source| SnapshotError::Store { name: self.spec.name.clone(), source })?;
        stats.batches += 1;
        stats.calls += rows.len() as u64;
        stats.rows += rows.len() as u64;
        progress(&RunProgress { block, rows: stats.rows });
        Ok(())
    }
}
