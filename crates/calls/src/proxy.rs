//! `CallProxy`: view calls for the API and the CLI. A call's block is pinned first (a tag, number or hash
//! becomes one number and hash), then the call runs at exactly that hash, so its result can be kept: the
//! same call at the same block hash always answers the same. Tags and numbers are re-read after
//! `head_max_age`; identical calls in flight share one round trip; a batch of calls at one block goes to
//! the node as one Multicall3 `aggregate3` where the chain has it, else side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes};
use gemgate_domain::broadcast::CallRequest;
use gemgate_domain::calls::{BlockSelector, CallOutput, PinnedBlock};
use gemgate_domain::ports::ViewCaller;
use gemgate_domain::{ChainError, ChainId};
use lru::LruCache;

use crate::cache::{CallKey, ResultCache, SingleFlight};
use crate::metrics::{CallMetrics, ChainLabel};
use crate::multicall;

/// How long a chain without Multicall3 (at the block asked about) is believed to have none.
const NO_MULTICALL_RECHECK: Duration = Duration::from_secs(60);
/// Pinned tags and numbers kept at once.
const PINS_KEPT: usize = 4096;

/// One view call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewCall {
    pub chain_id: ChainId,
    /// `msg.sender` of the call; calls without one may be batched through Multicall3.
    pub from: Option<Address>,
    pub to: Address,
    pub data: Bytes,
    pub block: BlockSelector,
}

/// A call's output and the block it ran at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    pub block: PinnedBlock,
    pub output: CallOutput,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("chain {0} is not configured")]
    UnknownChain(ChainId),
    #[error("chain {chain_id} has no block {block}")]
    NoSuchBlock { chain_id: ChainId, block: BlockSelector },
    #[error("a batch holds at most {max} calls; {given} given")]
    TooMany { max: usize, given: usize },
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// The proxy's settings.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// Bytes of results kept; 0: none.
    pub cache_bytes: u64,
    pub max_batch: usize,
    pub head_max_age: Duration,
}

#[derive(Debug)]
struct Chain {
    caller: Arc<dyn ViewCaller>,
    multicall3: Option<Address>,
    /// Whether Multicall3 answered as deployed, and when that was seen.
    multicall_seen: Mutex<Option<(bool, Instant)>>,
    queue: Mutex<Queue>,
}

impl Chain {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type PinKey = (ChainId, BlockSelector);

/// The proxy: cheap to clone (its state is shared), so a batch can be sent from a task of its own.
#[derive(Debug, Clone)]
pub struct CallProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    chains: HashMap<ChainId, Chain>,
    options: CallOptions,
    results: ResultCache,
    in_flight: SingleFlight<CallKey, Result<CallOutput, ChainError>>,
    /// Blocks by selector, with when they were read (a hash never expires).
    pins: Mutex<LruCache<PinKey, (PinnedBlock, Instant)>>,
    pins_in_flight: SingleFlight<PinKey, Result<Option<PinnedBlock>, ChainError>>,
    metrics: CallMetrics,
}

impl CallProxy {
    /// `chains`: each chain's caller and its Multicall3 address (`None`: calls in a batch run side by side).
    pub fn new(chains: Vec<(Arc<dyn ViewCaller>, Option<Address>)>, options: CallOptions) -> Self {
        Self { inner: Arc::new(Inner::new(chains, options)) }
    }

    pub fn with_metrics(mut self, metrics: CallMetrics) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.metrics = metrics,
            None => tracing::warn!("the call proxy is shared already: its metrics stay as they were"),
        }
        self
    }

    pub fn options(&self) -> CallOptions {
        self.inner.options
    }

    /// The block `at` names now, read from the node (not from the pins cache): to check that a pinned block
    /// is still canonical.
    pub async fn read_block(&self, chain_id: ChainId, at: BlockSelector) -> Result<PinnedBlock, CallError> {
        let chain = self.inner.chain(chain_id)?;
        chain.caller.pin(at).await?.ok_or(CallError::NoSuchBlock { chain_id, block: at })
    }

    /// One call. Uncached calls without `from` on a chain with Multicall3 are grouped: while one goes to
    /// the node, those arriving meanwhile wait and then go together as one batch (no call waits when the
    /// node is idle; under load, many calls share a round trip).
    pub async fn call(&self, call: &ViewCall) -> Result<CallAnswer, CallError> {
        let inner = &self.inner;
        let chain = inner.chain(call.chain_id)?;
        let block = inner.pin(chain, call.block).await?;
        if let Some(output) = inner.cached(&key(call, block)) {
            return Ok(CallAnswer { block, output });
        }
        let output = if call.from.is_none() && chain.multicall3.is_some() {
            self.grouped(chain, block, call).await?
        } else {
            inner.ask_node(chain, block, call).await?
        };
        Ok(CallAnswer { block, output })
    }

    /// Several calls, answered in order. Calls at the same block (and without `from`) that the cache does
    /// not have go to the node as one Multicall3 batch.
    pub async fn call_many(
        &self,
        calls: &[ViewCall],
    ) -> Result<Vec<Result<CallAnswer, CallError>>, CallError> {
        self.inner.call_many(calls).await
    }

    async fn grouped(
        &self,
        chain: &Chain,
        block: PinnedBlock,
        call: &ViewCall,
    ) -> Result<CallOutput, ChainError> {
        let waiting = {
            let mut queue = chain.lock_queue();
            if queue.busy {
                let (reply, answer) = tokio::sync::oneshot::channel();
                queue.waiting.push(Waiting { call: call.clone(), block, reply });
                Some(answer)
            } else {
                queue.busy = true;
                None
            }
        };
        match waiting {
            // The batch was given up (its sender stopped): ask alone.
            Some(answer) => match answer.await {
                Ok(output) => output,
                Err(_) => self.inner.ask_node(chain, block, call).await,
            },
            None => {
                // Whether this call completes or is dropped, the calls that queued behind it are sent.
                let _drain = Drain { proxy: self.clone(), chain_id: call.chain_id };
                self.inner.ask_node(chain, block, call).await
            }
        }
    }

    /// Sends the queued calls, batch after batch, until none are left.
    async fn drain(&self, chain_id: ChainId) {
        let Ok(chain) = self.inner.chain(chain_id) else { return };
        loop {
            let waiting = {
                let mut queue = chain.lock_queue();
                if queue.waiting.is_empty() {
                    queue.busy = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let mut by_block: HashMap<PinnedBlock, Vec<Waiting>> = HashMap::new();
            for w in waiting {
                by_block.entry(w.block).or_default().push(w);
            }
            for (block, mut group) in by_block {
                while !group.is_empty() {
                    let rest = group.split_off(group.len().min(self.inner.options.max_batch.max(2)));
                    self.inner.flush(chain, block, std::mem::replace(&mut group, rest)).await;
                }
            }
        }
    }
}

/// Calls queued behind one in flight.
#[derive(Debug)]
struct Waiting {
    call: ViewCall,
    block: PinnedBlock,
    reply: tokio::sync::oneshot::Sender<Result<CallOutput, ChainError>>,
}

#[derive(Debug, Default)]
struct Queue {
    /// A call or batch is in flight: calls queue instead of going out.
    busy: bool,
    waiting: Vec<Waiting>,
}

/// Hands the queue on when the call in flight is done or dropped.
struct Drain {
    proxy: CallProxy,
    chain_id: ChainId,
}

impl Drop for Drain {
    fn drop(&mut self) {
        let Ok(chain) = self.proxy.inner.chain(self.chain_id) else { return };
        {
            let mut queue = chain.lock_queue();
            if queue.waiting.is_empty() {
                queue.busy = false;
                return;
            }
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (proxy, chain_id) = (self.proxy.clone(), self.chain_id);
                runtime.spawn(async move { proxy.drain(chain_id).await });
            }
            // No runtime (shutting down): the waiting calls see their batch given up and ask alone.
            Err(_) => {
                let mut queue = chain.lock_queue();
                queue.waiting.clear();
                queue.busy = false;
            }
        }
    }
}

impl Inner {
    fn new(chains: Vec<(Arc<dyn ViewCaller>, Option<Address>)>, options: CallOptions) -> Self {
        let chains = chains
            .into_iter()
            .map(|(caller, multicall3)| {
                let chain =
                    Chain { caller, multicall3, multicall_seen: Mutex::new(None), queue: Mutex::default() };
                (chain.caller.chain_id(), chain)
            })
            .collect();
        let kept = std::num::NonZeroUsize::new(PINS_KEPT).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            chains,
            options,
            results: ResultCache::new(options.cache_bytes),
            in_flight: SingleFlight::default(),
            pins: Mutex::new(LruCache::new(kept)),
            pins_in_flight: SingleFlight::default(),
            metrics: CallMetrics::default(),
        }
    }

    /// Several calls, answered in order. Calls at the same block (and without `from`) that the cache does
    /// not have go to the node as one Multicall3 batch.
    async fn call_many(&self, calls: &[ViewCall]) -> Result<Vec<Result<CallAnswer, CallError>>, CallError> {
        if calls.len() > self.options.max_batch {
            return Err(CallError::TooMany { max: self.options.max_batch, given: calls.len() });
        }
        // Each distinct block once.
        let mut pins: HashMap<PinKey, Result<PinnedBlock, CallError>> = HashMap::new();
        for call in calls {
            if let std::collections::hash_map::Entry::Vacant(slot) = pins.entry((call.chain_id, call.block)) {
                let pinned = match self.chain(call.chain_id) {
                    Ok(chain) => self.pin(chain, call.block).await,
                    Err(e) => Err(e),
                };
                slot.insert(pinned);
            }
        }
        let mut answers: Vec<Option<Result<CallAnswer, CallError>>> = vec![None; calls.len()];
        // Cache hits are answered now; the rest grouped by chain and block.
        let mut groups: HashMap<(ChainId, PinnedBlock), Vec<usize>> = HashMap::new();
        for (i, call) in calls.iter().enumerate() {
            let block = match &pins[&(call.chain_id, call.block)] {
                Ok(block) => *block,
                Err(e) => {
                    answers[i] = Some(Err(e.clone()));
                    continue;
                }
            };
            if let Some(output) = self.cached(&key(call, block)) {
                answers[i] = Some(Ok(CallAnswer { block, output }));
            } else {
                groups.entry((call.chain_id, block)).or_default().push(i);
            }
        }
        for ((chain_id, block), members) in groups {
            let chain = self.chain(chain_id)?;
            let (batchable, alone): (Vec<usize>, Vec<usize>) =
                members.into_iter().partition(|&i| calls[i].from.is_none());
            let mut side_by_side = alone;
            match self.batch(chain, block, calls, &batchable).await {
                Some(outputs) => {
                    for (i, output) in batchable.into_iter().zip(outputs) {
                        answers[i] = Some(Ok(CallAnswer { block, output }));
                    }
                }
                None => side_by_side.extend(batchable),
            }
            let outputs = futures::future::join_all(
                side_by_side.iter().map(|&i| self.ask_node(chain, block, &calls[i])),
            )
            .await;
            for (i, output) in side_by_side.into_iter().zip(outputs) {
                answers[i] = Some(output.map(|output| CallAnswer { block, output }).map_err(CallError::from));
            }
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(Err(CallError::UnknownChain(0)))).collect())
    }

    fn chain(&self, chain_id: ChainId) -> Result<&Chain, CallError> {
        self.chains.get(&chain_id).ok_or(CallError::UnknownChain(chain_id))
    }

    /// The block `at` names now: a hash once read is kept for good, tags and numbers for `head_max_age`.
    async fn pin(&self, chain: &Chain, at: BlockSelector) -> Result<PinnedBlock, CallError> {
        let chain_id = chain.caller.chain_id();
        let key = (chain_id, at);
        let fresh = |(_, read): &(PinnedBlock, Instant)| {
            matches!(at, BlockSelector::Hash(_)) || read.elapsed() < self.options.head_max_age
        };
        if let Some(entry) = self.lock_pins().get(&key).filter(|e| fresh(e)) {
            return Ok(entry.0);
        }
        let (pinned, _) = self.pins_in_flight.run(&key, || chain.caller.pin(at)).await;
        let block = pinned?.ok_or(CallError::NoSuchBlock { chain_id, block: at })?;
        self.lock_pins().put(key, (block, Instant::now()));
        Ok(block)
    }

    fn lock_pins(&self) -> std::sync::MutexGuard<'_, LruCache<PinKey, (PinnedBlock, Instant)>> {
        self.pins.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A cached result, counted.
    fn cached(&self, key: &CallKey) -> Option<CallOutput> {
        let label = ChainLabel { chain_id: key.chain_id };
        match self.results.get(key) {
            Some(output) => {
                self.metrics.hits.get_or_create(&label).inc();
                self.metrics.rpc_saved.get_or_create(&label).inc();
                Some(output)
            }
            None => {
                self.metrics.misses.get_or_create(&label).inc();
                None
            }
        }
    }

    fn keep(&self, key: CallKey, output: CallOutput) {
        self.results.insert(key, output);
        let (entries, bytes) = self.results.usage();
        self.metrics.cache_entries.set(entries as i64);
        self.metrics.cache_bytes.set(bytes as i64);
    }

    /// Queued calls at one block, as one Multicall3 batch where that works, else one by one; each
    /// caller gets its answer.
    async fn flush(&self, chain: &Chain, block: PinnedBlock, group: Vec<Waiting>) {
        // What the call ahead of them brought back meanwhile (an identical call) needs no round trip.
        let mut group = group;
        group.retain_mut(|waiting| {
            let Some(output) = self.results.get(&key(&waiting.call, block)) else { return true };
            let label = ChainLabel { chain_id: waiting.call.chain_id };
            self.metrics.coalesced.get_or_create(&label).inc();
            self.metrics.rpc_saved.get_or_create(&label).inc();
            let (reply, _) = tokio::sync::oneshot::channel();
            let _ = std::mem::replace(&mut waiting.reply, reply).send(Ok(output));
            false
        });
        let calls: Vec<ViewCall> = group.iter().map(|w| w.call.clone()).collect();
        let members: Vec<usize> = (0..calls.len()).collect();
        match self.batch(chain, block, &calls, &members).await {
            Some(outputs) => {
                for (waiting, output) in group.into_iter().zip(outputs) {
                    let _ = waiting.reply.send(Ok(output));
                }
            }
            None => {
                let outputs =
                    futures::future::join_all(calls.iter().map(|call| self.ask_node(chain, block, call)))
                        .await;
                for (waiting, output) in group.into_iter().zip(outputs) {
                    let _ = waiting.reply.send(output);
                }
            }
        }
    }

    /// One call from the node, sharing an identical call in flight.
    async fn ask_node(
        &self,
        chain: &Chain,
        block: PinnedBlock,
        call: &ViewCall,
    ) -> Result<CallOutput, ChainError> {
        let key = key(call, block);
        let label = ChainLabel { chain_id: call.chain_id };
        let (output, ran) = self
            .in_flight
            .run(&key, || async {
                self.metrics.rpc_calls.get_or_create(&label).inc();
                let request = CallRequest {
                    from: call.from.unwrap_or_default(),
                    to: Some(call.to),
                    data: call.data.clone(),
                    ..CallRequest::default()
                };
                let output = chain.caller.call_at(&request, block.hash).await;
                if let Ok(output) = &output {
                    // Kept before the flight lands, so a caller arriving after it finds the result.
                    self.keep(key.clone(), output.clone());
                }
                output
            })
            .await;
        if !ran {
            self.metrics.coalesced.get_or_create(&label).inc();
            self.metrics.rpc_saved.get_or_create(&label).inc();
        }
        output
    }

    /// The calls at `members` as one Multicall3 batch; `None` when there is no batch to make (fewer than
    /// two distinct calls, no Multicall3 at this block) or it failed, and the calls should run one by one.
    async fn batch(
        &self,
        chain: &Chain,
        block: PinnedBlock,
        calls: &[ViewCall],
        members: &[usize],
    ) -> Option<Vec<CallOutput>> {
        let multicall3 = chain.multicall3?;
        let mut distinct: Vec<(Address, Bytes)> = Vec::new();
        let mut slots = Vec::with_capacity(members.len());
        for &i in members {
            let call = (calls[i].to, calls[i].data.clone());
            let slot = distinct.iter().position(|c| *c == call).unwrap_or_else(|| {
                distinct.push(call);
                distinct.len() - 1
            });
            slots.push(slot);
        }
        if distinct.len() < 2 || !self.has_multicall(chain, multicall3, block).await {
            return None;
        }
        let label = ChainLabel { chain_id: chain.caller.chain_id() };
        let request = CallRequest {
            to: Some(multicall3),
            data: multicall::encode(&distinct),
            ..CallRequest::default()
        };
        self.metrics.rpc_calls.get_or_create(&label).inc();
        let answer = chain.caller.call_at(&request, block.hash).await;
        let outputs = match answer {
            Ok(CallOutput::Returned(data)) => multicall::decode(&data, distinct.len()),
            Ok(CallOutput::Reverted { message, .. }) => {
                tracing::debug!(%message, "the Multicall3 batch reverted; calling one by one");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "the Multicall3 batch failed; calling one by one");
                None
            }
        }?;
        self.metrics.batches.get_or_create(&label).inc();
        self.metrics.rpc_saved.get_or_create(&label).inc_by(distinct.len() as u64 - 1);
        for ((to, data), output) in distinct.iter().zip(&outputs) {
            let key = CallKey {
                chain_id: label.chain_id,
                block: block.hash,
                from: None,
                to: *to,
                data: data.clone(),
            };
            self.keep(key, output.clone());
        }
        Some(slots.into_iter().map(|slot| outputs[slot].clone()).collect())
    }

    /// Whether Multicall3 has code at `block` (a yes is kept; a no is asked again after a minute).
    async fn has_multicall(&self, chain: &Chain, multicall3: Address, block: PinnedBlock) -> bool {
        let seen = *chain.multicall_seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen {
            Some((true, _)) => return true,
            Some((false, at)) if at.elapsed() < NO_MULTICALL_RECHECK => return false,
            _ => {}
        }
        let deployed = match chain.caller.has_code(multicall3, block.hash).await {
            Ok(deployed) => deployed,
            Err(error) => {
                tracing::debug!(%error, "could not check for Multicall3");
                return false;
            }
        };
        if !deployed {
            tracing::info!(chain_id = chain.caller.chain_id(), %multicall3, "no Multicall3 on this chain: batched calls run side by side");
        }
        *chain.multicall_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((deployed, Instant::now()));
        deployed
    }
}

fn key(call: &ViewCall, block: PinnedBlock) -> CallKey {
    CallKey {
        chain_id: call.chain_id,
        block: block.hash,
        from: call.from,
        to: call.to,
        data: call.data.clone(),
    }
}
