//! The indexer: `step` does one unit of work and says what it did; `run` loops over it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gemgate_domain::ports::{Batch, ChainSource, Heads, LogQuery, RawLog, Store};
use gemgate_domain::{BlockRef, ChainError, ChainEvent, ChainId, FinalityLevel, Header};
use gemgate_projections::Decoder;

use crate::IndexerError;
use crate::metrics::{ChainLabel, IndexerMetrics};
use crate::span::SpanController;
use crate::window::{Link, link};

/// How the indexer works one chain.
#[derive(Debug, Clone)]
pub struct IndexerSettings {
    pub chain_id: ChainId,
    /// The first block to index (the lowest `start_block` of the chain's contracts).
    pub start_block: u64,
    /// Depth used for `safe`/`finalized` when the node has no such tags.
    pub confirmations: u64,
    /// Wait between polls once caught up.
    pub poll_interval: Duration,
    /// First `eth_getLogs` span; it adapts from there.
    pub initial_span: u64,
    pub max_span: u64,
    /// Log ranges fetched at once during backfill.
    pub concurrency: usize,
    /// Most blocks committed in one batch near the tip (each needs its header).
    pub tip_batch: u64,
    /// Events (by topic0) whose transaction sender is fetched and put in `tx_from` before commit.
    pub sender_topics: Vec<alloy_primitives::B256>,
}

impl IndexerSettings {
    pub fn new(chain_id: ChainId, start_block: u64) -> Self {
        Self {
            chain_id,
            start_block,
            confirmations: 12,
            poll_interval: Duration::from_secs(1),
            // Small at first: the span doubles while responses stay small, so a dense chain never starts with
            // a huge first response, and a sparse one reaches wide ranges within a few requests.
            initial_span: 100,
            // Most public providers cap ranges at 10k blocks or fewer; the span learns lower caps from errors.
            max_span: 10_000,
            concurrency: 4,
            tip_batch: 100,
            sender_topics: Vec::new(),
        }
    }
}

/// What one `step` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Blocks `from..=to` were committed with `events` events.
    Committed { from: u64, to: u64, events: usize },
    /// A fork was found and everything above `ancestor` reverted.
    Reverted { ancestor: u64, events_removed: u64 },
    /// Nothing to do: the cursor is at the head.
    UpToDate { head: u64 },
    /// The node is behind what we already committed (lagging, syncing): not a reorg; wait.
    NodeBehind { node_head: u64, cursor: u64 },
    /// The node changed branch while we fetched; nothing was committed; try again.
    Retry,
}

/// The read side of the indexer, cloneable into concurrent range fetches.
#[derive(Clone)]
struct Fetcher {
    chain_id: ChainId,
    source: Arc<dyn ChainSource>,
    decoder: Arc<Decoder>,
    span: Arc<SpanController>,
    metrics: IndexerMetrics,
    sender_topics: Arc<Vec<alloy_primitives::B256>>,
}

impl Fetcher {
    fn chain_err(&self) -> impl Fn(ChainError) -> IndexerError + '_ {
        move |source| IndexerError::Chain { chain_id: self.chain_id, source }
    }

    /// Fetches one log range whole, splitting it when the provider refuses its size.
    async fn logs(&self, from: u64, to: u64) -> Result<Vec<RawLog>, IndexerError> {
        let addresses = self.decoder.addresses();
        let mut logs = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start + self.span.span() - 1);
            let query = LogQuery::Range { from: start, to: end, addresses: addresses.clone() };
            match self.source.logs(&query).await {
                Ok(mut found) => {
                    self.span.on_success(end - start + 1, found.len());
                    logs.append(&mut found);
                    start = end + 1;
                }
                Err(ChainError::RangeTooLarge { from, to, hint, message }) => {
                    let shorter = self.span.on_refused(from, to, hint);
                    tracing::debug!(chain_id = self.chain_id, from, to, shorter, %message, "log range refused; splitting");
                }
                Err(other) => return Err(self.chain_err()(other)),
            }
        }
        Ok(logs)
    }

    fn decode(&self, logs: &[RawLog]) -> Vec<ChainEvent> {
        let events: Vec<ChainEvent> =
            logs.iter().map(|log| self.decoder.decode(self.chain_id, log)).collect();
        let unknown = events.iter().filter(|e| e.event.is_empty()).count();
        if unknown > 0 {
            self.metrics
                .unknown_events
                .get_or_create(&ChainLabel { chain_id: self.chain_id })
                .inc_by(unknown as u64);
        }
        events
    }

    /// A backfill range: its logs decoded, and the header of its last block.
    async fn range(
        self,
        from: u64,
        to: u64,
    ) -> Result<(u64, Option<BlockRef>, Vec<ChainEvent>), IndexerError> {
        let logs = self.logs(from, to).await?;
        let block = self.source.block(to).await.map_err(self.chain_err())?;
        let mut events = self.decode(&logs);
        self.fill_senders(&mut events).await?;
        Ok((to, block, events))
    }

    async fn fill_senders(&self, events: &mut [ChainEvent]) -> Result<(), IndexerError> {
        fill_senders(self.source.as_ref(), &self.sender_topics, events).await.map_err(self.chain_err())
    }
}

/// Fetches the transaction sender of the events (by topic0 in `topics`) that need one, one request per
/// transaction.
pub(crate) async fn fill_senders(
    source: &dyn ChainSource,
    topics: &[alloy_primitives::B256],
    events: &mut [ChainEvent],
) -> Result<(), ChainError> {
    let mut senders = std::collections::HashMap::new();
    for event in events.iter_mut().filter(|e| topics.contains(&e.signature)) {
        let sender = match senders.get(&event.tx_hash) {
            Some(sender) => *sender,
            None => {
                let sender = source.transaction_sender(event.tx_hash).await?;
                senders.insert(event.tx_hash, sender);
                sender
            }
        };
        event.tx_from = sender;
    }
    Ok(())
}

/// The indexer of one chain.
pub struct Indexer {
    source: Arc<dyn ChainSource>,
    store: Arc<dyn Store>,
    decoder: Arc<Decoder>,
    settings: IndexerSettings,
    metrics: IndexerMetrics,
    /// `None` until loaded from the store; then the committed cursor (itself `None` before the first batch).
    cursor: Option<Option<BlockRef>>,
    /// The finalized head last recorded: nothing at or below it is ever reverted.
    floor: u64,
    fetcher: Fetcher,
    /// New heads pushed by a websocket subscription, if configured: `run` wakes on them.
    heads: Option<tokio::sync::watch::Receiver<u64>>,
    /// The chain's lease while this indexer leads it (several processes on one database): every write
    /// carries it, and the store refuses them once another process took the lease.
    fence: Option<gemgate_domain::cluster::Fence>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer").field("settings", &self.settings).field("cursor", &self.cursor).finish()
    }
}

impl Indexer {
    pub fn new(
        source: Arc<dyn ChainSource>,
        store: Arc<dyn Store>,
        decoder: Arc<Decoder>,
        settings: IndexerSettings,
        metrics: IndexerMetrics,
    ) -> Self {
        let span = Arc::new(SpanController::new(settings.initial_span, settings.max_span));
        let fetcher = Fetcher {
            chain_id: settings.chain_id,
            source: source.clone(),
            decoder: decoder.clone(),
            span,
            metrics: metrics.clone(),
            sender_topics: Arc::new(settings.sender_topics.clone()),
        };
        Self {
            source,
            store,
            decoder,
            settings,
            metrics,
            cursor: None,
            floor: 0,
            fetcher,
            heads: None,
            fence: None,
        }
    }

    /// Wakes on pushed heads (a websocket `newHeads` subscription) instead of only polling.
    pub fn with_head_notifications(mut self, heads: tokio::sync::watch::Receiver<u64>) -> Self {
        self.heads = Some(heads);
        self
    }

    /// Waits for the next pushed head, or `timeout` (polling stays the fallback).
    async fn wait_for_head(&mut self, timeout: Duration) {
        match &mut self.heads {
            Some(heads) => {
                let _ = tokio::time::timeout(timeout, heads.changed()).await;
            }
            None => tokio::time::sleep(timeout).await,
        }
    }

    pub fn chain_id(&self) -> ChainId {
        self.settings.chain_id
    }

    /// Starts (or ends, with `None`) a term under a lease: what the last term knew of the store is
    /// forgotten, since another process may have moved the chain since.
    pub fn set_fence(&mut self, fence: Option<gemgate_domain::cluster::Fence>) {
        self.fence = fence;
        self.cursor = None;
        self.floor = 0;
    }

    /// The chain's latest block number as the node reports it.
    pub async fn chain_head(&self) -> Result<u64, IndexerError> {
        Ok(self.source.head(FinalityLevel::Latest).await.map_err(self.chain_err())?.map_or(0, |b| b.number))
    }

    fn label(&self) -> ChainLabel {
        ChainLabel { chain_id: self.settings.chain_id }
    }

    fn chain_err(&self) -> impl Fn(ChainError) -> IndexerError + '_ {
        move |source| IndexerError::Chain { chain_id: self.settings.chain_id, source }
    }

    fn store_err(&self) -> impl Fn(gemgate_domain::StoreError) -> IndexerError + '_ {
        move |source| IndexerError::Store { chain_id: self.settings.chain_id, source }
    }

    /// The committed cursor.
    pub async fn cursor(&mut self) -> Result<Option<BlockRef>, IndexerError> {
        if let Some(cursor) = self.cursor {
            return Ok(cursor);
        }
        let cursor = self.store.cursor(self.settings.chain_id).await.map_err(self.store_err())?;
        self.cursor = Some(cursor);
        Ok(cursor)
    }

    /// Heads from the node's tags, or from depth where it has none.
    async fn heads(&self) -> Result<Option<Heads>, IndexerError> {
        let Some(latest) = self.source.head(FinalityLevel::Latest).await.map_err(self.chain_err())? else {
            return Ok(None);
        };
        let by_depth = latest.number.saturating_sub(self.settings.confirmations);
        let safe = self
            .source
            .head(FinalityLevel::Safe)
            .await
            .map_err(self.chain_err())?
            .map_or(by_depth, |b| b.number);
        let finalized = self
            .source
            .head(FinalityLevel::Finalized)
            .await
            .map_err(self.chain_err())?
            .map_or(by_depth, |b| b.number);
        Ok(Some(Heads {
            latest: latest.number,
            safe: safe.min(latest.number),
            finalized: finalized.min(safe).min(latest.number),
        }))
    }

    /// Does one unit of work: a backfill stretch, a tip batch, or a revert.
    pub async fn step(&mut self) -> Result<StepOutcome, IndexerError> {
        let cursor = self.cursor().await?;
        let Some(heads) = self.heads().await? else {
            return Ok(StepOutcome::NodeBehind { node_head: 0, cursor: cursor.map_or(0, |c| c.number) });
        };
        self.metrics.head_block.get_or_create(&self.label()).set(heads.latest as i64);
        if let Some(c) = cursor {
            if c.number > heads.latest {
                return Ok(StepOutcome::NodeBehind { node_head: heads.latest, cursor: c.number });
            }
            // Above the last recorded finality, the cursor may have been reorged away while we were not looking.
            if c.number > self.floor || self.floor == 0 {
                match self.source.block(c.number).await.map_err(self.chain_err())? {
                    // A node with blocks above the cursor but none at its height has a hole in its index
                    // (anvil after racing reorgs does): the next block's parent says whether the cursor is
                    // still canonical.
                    None if heads.latest > c.number => {
                        match self.source.block(c.number + 1).await.map_err(self.chain_err())? {
                            Some(child) if child.parent_hash == c.hash => {}
                            Some(_) => return self.revert_fork(c).await,
                            None => {
                                return Ok(StepOutcome::NodeBehind {
                                    node_head: heads.latest,
                                    cursor: c.number,
                                });
                            }
                        }
                    }
                    None => return Ok(StepOutcome::NodeBehind { node_head: heads.latest, cursor: c.number }),
                    Some(block) if block.hash != c.hash => return self.revert_fork(c).await,
                    Some(_) => {}
                }
            }
        }
        self.store
            .record_heads(self.settings.chain_id, &heads, self.fence.as_ref())
            .await
            .map_err(self.store_err())?;
        self.floor = heads.finalized;

        let next = cursor.map_or(self.settings.start_block, |c| c.number + 1);
        if next > heads.latest {
            return Ok(StepOutcome::UpToDate { head: heads.latest });
        }
        if next <= heads.finalized {
            self.backfill(next, heads.finalized, heads.finalized).await
        } else {
            let end = heads.latest.min(next + self.settings.tip_batch - 1);
            self.follow(next, end, heads.finalized).await
        }
    }

    async fn commit(
        &mut self,
        blocks: Vec<BlockRef>,
        events: Vec<ChainEvent>,
        finalized: u64,
    ) -> Result<(), IndexerError> {
        let Some(last) = blocks.last().copied() else { return Ok(()) };
        let previous = self.cursor().await?;
        let first = previous.map_or(self.settings.start_block, |c| c.number + 1);
        let batch = Batch {
            chain_id: self.settings.chain_id,
            blocks,
            events,
            outbox: Vec::new(),
            previous,
            cursor: last,
            finalized,
            fence: self.fence.clone(),
        };
        let started = std::time::Instant::now();
        if let Err(error) = self.store.commit_batch(&batch).await {
            // Another writer moved the cursor (or a commit whose client died landed after all): forget ours
            // and reload it on the next step instead of retrying against a stale one forever.
            if matches!(error, gemgate_domain::StoreError::Fenced { .. }) {
                self.cursor = None;
            }
            return Err(self.store_err()(error));
        }
        tracing::debug!(
            chain_id = self.settings.chain_id,
            from = first,
            to = last.number,
            events = batch.events.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch committed"
        );
        let label = self.label();
        self.metrics.events.get_or_create(&label).inc_by(batch.events.len() as u64);
        self.metrics.blocks.get_or_create(&label).inc_by(last.number + 1 - first);
        self.metrics.indexed_block.get_or_create(&label).set(last.number as i64);
        self.cursor = Some(Some(last));
        Ok(())
    }

    /// Below finality nothing can change: wide ranges fetched concurrently, committed strictly in order as
    /// they arrive, one batch each.
    async fn backfill(&mut self, next: u64, end: u64, finalized: u64) -> Result<StepOutcome, IndexerError> {
        let span = self.fetcher.span.span();
        let mut ranges = Vec::new();
        let mut from = next;
        // Enough ranges per step to keep `concurrency` fetches in flight while earlier ones commit.
        while from <= end && ranges.len() < self.settings.concurrency * 4 {
            let to = end.min(from + span - 1);
            ranges.push((from, to));
            from = to + 1;
        }
        let fetcher = self.fetcher.clone();
        // Each range is fetched and decoded in a task of its own, so fetching continues while a batch commits.
        let mut fetched = futures::stream::iter(ranges)
            .map(|(from, to)| tokio::spawn(fetcher.clone().range(from, to)))
            .buffered(self.settings.concurrency);
        let mut total = 0;
        let mut last = next.saturating_sub(1);
        while let Some(joined) = fetched.next().await {
            let (to, block, events) = joined.map_err(|e| IndexerError::Chain {
                chain_id: self.settings.chain_id,
                source: ChainError::InvalidResponse { endpoint: "fetch task".into(), message: e.to_string() },
            })??;
            let Some(block) = block else {
                return Ok(StepOutcome::NodeBehind { node_head: last, cursor: last });
            };
            total += events.len();
            self.commit(vec![block], events, finalized).await?;
            last = to;
        }
        Ok(StepOutcome::Committed { from: next, to: last, events: total })
    }

    /// Near the tip every block's header is checked against its parent before its logs are committed, and
    /// the logs against the headers: each log must carry its block's hash, and a block whose logs bloom
    /// names a configured contract must come with logs (a node behind a balancer may answer a range before
    /// it has all of it; such a block is asked for again by hash).
    async fn follow(&mut self, next: u64, end: u64, finalized: u64) -> Result<StepOutcome, IndexerError> {
        let cursor = self.cursor().await?;
        let headers: Vec<Option<Header>> = futures::stream::iter(next..=end)
            .map(|n| self.source.header(n))
            .buffered(self.settings.concurrency * 2)
            .try_collect()
            .await
            .map_err(self.chain_err())?;
        let Some(headers) = self.fill_holes(headers).await? else {
            return Ok(StepOutcome::NodeBehind { node_head: next, cursor: cursor.map_or(0, |c| c.number) });
        };
        let end = next + headers.len() as u64 - 1;
        let blocks: Vec<BlockRef> = headers.iter().map(|h| h.block).collect();
        match link(cursor.as_ref(), &blocks) {
            Link::Fork => {
                return match cursor {
                    Some(c) => self.revert_fork(c).await,
                    None => Ok(StepOutcome::Retry),
                };
            }
            Link::Torn => return Ok(StepOutcome::Retry),
            Link::Extends => {}
        }
        let addresses = self.decoder.addresses();
        let mut logs = if blocks.len() == 1 {
            let query = LogQuery::Block { hash: blocks[0].hash, addresses: addresses.clone() };
            self.source.logs(&query).await.map_err(self.chain_err())?
        } else {
            self.fetcher.logs(next, end).await?
        };
        // Logs must come from exactly the blocks whose headers we checked.
        let foreign = |logs: &[RawLog]| {
            logs.iter().any(|log| {
                log.block_number < next
                    || blocks.get((log.block_number - next) as usize).map(|b| b.hash) != Some(log.block_hash)
            })
        };
        if foreign(&logs) {
            self.metrics.log_mismatches.get_or_create(&self.label()).inc();
            tracing::debug!(
                chain_id = self.settings.chain_id,
                next,
                end,
                "logs of another block; fetching again"
            );
            return Ok(StepOutcome::Retry);
        }
        let silent: Vec<BlockRef> = headers
            .iter()
            .filter(|h| h.may_have_logs_of(&addresses) && !logs.iter().any(|l| l.block_hash == h.block.hash))
            .map(|h| h.block)
            .collect();
        if !silent.is_empty() && blocks.len() > 1 {
            // Asked by hash, a node answers for exactly that block or refuses; what it gives is taken (the
            // bloom also matches now and then for a block without our logs).
            self.metrics.log_mismatches.get_or_create(&self.label()).inc();
            for block in &silent {
                let query = LogQuery::Block { hash: block.hash, addresses: addresses.clone() };
                let more = self.source.logs(&query).await.map_err(self.chain_err())?;
                if foreign(&more) {
                    return Ok(StepOutcome::Retry);
                }
                tracing::debug!(
                    chain_id = self.settings.chain_id,
                    block = block.number,
                    logs = more.len(),
                    "a range answer left out a block its bloom names; fetched it by hash"
                );
                logs.extend(more);
            }
            logs.sort_by_key(|l| (l.block_number, l.log_index));
        }
        let mut events = self.fetcher.decode(&logs);
        self.fetcher.fill_senders(&mut events).await?;
        let count = events.len();
        self.commit(blocks, events, finalized).await?;
        Ok(StepOutcome::Committed { from: next, to: end, events: count })
    }

    /// Headers fetched by number, with the gaps a node leaves (`None`) filled by hash from the parent link
    /// of the block above, and the unavailable ones at the end dropped (committed next time). `None` when the
    /// first is unavailable and cannot be reached that way.
    async fn fill_holes(
        &self,
        mut headers: Vec<Option<Header>>,
    ) -> Result<Option<Vec<Header>>, IndexerError> {
        while matches!(headers.last(), Some(None)) {
            headers.pop();
        }
        for i in (0..headers.len().saturating_sub(1)).rev() {
            if headers[i].is_some() {
                continue;
            }
            let Some(child) = headers[i + 1] else { return Ok(None) };
            let parent =
                self.source.header_by_hash(child.block.parent_hash).await.map_err(self.chain_err())?;
            match parent {
                Some(p)
                    if p.block.hash == child.block.parent_hash
                        && p.block.number + 1 == child.block.number =>
                {
                    tracing::debug!(
                        chain_id = self.settings.chain_id,
                        block = p.block.number,
                        "the node has no block at this height; found it by its child's parent hash"
                    );
                    headers[i] = Some(p);
                }
                _ => return Ok(None),
            }
        }
        Ok(headers.into_iter().collect::<Option<Vec<Header>>>().filter(|h| !h.is_empty()))
    }

    /// The cursor is no longer canonical: walk the window down to the newest block the node still has,
    /// and revert to it. Halts if no such block is above finality.
    async fn revert_fork(&mut self, cursor: BlockRef) -> Result<StepOutcome, IndexerError> {
        let window = self.store.window(self.settings.chain_id).await.map_err(self.store_err())?;
        let mut ancestor = None;
        let mut unavailable = 0;
        for stored in window.iter().rev().filter(|b| b.number <= cursor.number) {
            match self.source.block(stored.number).await.map_err(self.chain_err())? {
                // A hole in the node's index: going deeper is safe (more is reverted and applied again).
                None => unavailable += 1,
                Some(block) if block.hash == stored.hash => {
                    ancestor = Some(*stored);
                    break;
                }
                Some(_) => {}
            }
        }
        let Some(ancestor) = ancestor else {
            if unavailable > 0 {
                // Not proven below finality: the node could not show some of the blocks; wait for it.
                return Ok(StepOutcome::NodeBehind { node_head: cursor.number, cursor: cursor.number });
            }
            self.metrics.halted.get_or_create(&self.label()).set(1);
            return Err(IndexerError::ReorgBelowFinality {
                chain_id: self.settings.chain_id,
                block: window.first().map_or(cursor.number, |b| b.number),
                finalized: self.floor,
            });
        };
        let summary = self
            .store
            .revert_to(self.settings.chain_id, &ancestor, self.fence.as_ref())
            .await
            .map_err(self.store_err())?;
        let label = self.label();
        self.metrics.reorgs.get_or_create(&label).inc();
        self.metrics.reverted_events.get_or_create(&label).inc_by(summary.events_removed);
        self.metrics.indexed_block.get_or_create(&label).set(ancestor.number as i64);
        tracing::warn!(
            chain_id = self.settings.chain_id,
            from = cursor.number,
            ancestor = ancestor.number,
            events_removed = summary.events_removed,
            retractions = summary.retractions_written,
            "reorg reverted"
        );
        self.cursor = Some(Some(ancestor));
        Ok(StepOutcome::Reverted { ancestor: ancestor.number, events_removed: summary.events_removed })
    }

    /// Steps until the cursor reaches the head seen at the start of each step (`gemgate index --once`).
    pub async fn catch_up(&mut self, mut on_step: impl FnMut(&StepOutcome)) -> Result<(), IndexerError> {
        let mut failures = 0u32;
        loop {
            match self.step().await {
                Ok(StepOutcome::UpToDate { .. }) => return Ok(()),
                Ok(outcome) => {
                    failures = 0;
                    on_step(&outcome);
                    if matches!(outcome, StepOutcome::NodeBehind { .. } | StepOutcome::Retry) {
                        tokio::time::sleep(self.settings.poll_interval).await;
                    }
                }
                Err(error) if error.is_retryable() && failures < 10 => {
                    failures += 1;
                    tracing::warn!(%error, failures, "indexer step failed; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Follows the chain until `shutdown` resolves. Transient failures are retried with backoff forever
    /// (nothing is skipped); a fatal one (a reorg below finality) stops this chain and is returned. Under a
    /// lease (`set_fence`), a write refused for a newer token ends the run with that error (`is_fenced`).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), IndexerError> {
        self.run_until(shutdown).await
    }

    /// `run` without giving the indexer up: a lease loop runs one term after another with it.
    pub async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), IndexerError> {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let pause = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                result = self.step() => match result {
                    Ok(StepOutcome::Committed { .. } | StepOutcome::Reverted { .. }) => {
                        failures = 0;
                        Pause::None
                    }
                    Ok(_) => {
                        failures = 0;
                        Pause::UntilNextHead(self.settings.poll_interval)
                    }
                    Err(error) if self.fence.is_some() && error.is_fenced() => return Err(error),
                    Err(error) if error.is_retryable() => {
                        failures += 1;
                        tracing::warn!(%error, failures, "indexer step failed; retrying");
                        Pause::Backoff(backoff(failures))
                    }
                    Err(error) => {
                        tracing::error!(%error, "indexer halted");
                        return Err(error);
                    }
                }
            };
            match pause {
                Pause::None => {}
                Pause::UntilNextHead(wait) => tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = self.wait_for_head(wait) => {}
                },
                // A failing node or database gets its full backoff, new heads or not.
                Pause::Backoff(wait) => tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                },
            }
        }
    }
}

/// What `run` does between steps.
enum Pause {
    None,
    UntilNextHead(Duration),
    Backoff(Duration),
}

/// 200 ms doubling to 30 s: a database or node restart is ridden out without hammering it.
fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(200) * 2u32.saturating_pow(failures.min(8))).min(Duration::from_secs(30))
}
