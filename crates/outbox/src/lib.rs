//! The dispatcher: one per configured sink, with its own position in the outbox, filter, finality and
//! ordering. It reads outbox rows in commit order, publishes them through the `Sink` port and records its
//! position once every row up to it is delivered (or dead-lettered). Delivery is at least once: after a
//! crash the rows after the stored position are sent again, with the same ids.
//!
//! Order is kept per ordering key. When the destination refuses a message, that key is blocked (its later
//! messages wait behind it, in order) and retried with backoff; other keys go on. After `max_attempts`
//! refusals the message goes to the dead-letter table and its key moves on. When the destination is
//! unreachable, the whole sink backs off and nothing is counted against any message: the backlog waits in
//! the outbox and drains when the destination is back.

mod metrics;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use gemgate_domain::backoff::backoff_delay;
use gemgate_domain::ports::{Heads, OutboxEntry, OutboxStore, Sink, SinkFailure};
use gemgate_domain::{ChainId, EventStatus, Finality, MessageFilter, OutboxMessage, SinkError, StoreError};
use tokio::time::Instant;

pub use metrics::{DispatchMetrics, SinkLabel};

/// How one dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub sink: String,
    pub finality: Finality,
    /// The messages to deliver (`sinks.events`); empty means every message.
    pub events: MessageFilter,
    /// Refusals before a message is dead-lettered.
    pub max_attempts: u32,
    /// Outbox rows read per round.
    pub page: u32,
    /// Rows held in memory at most (read but not yet delivered), bounding memory while a key is blocked.
    pub window: usize,
    /// Wait between rounds when there is nothing new.
    pub poll_interval: Duration,
    /// Backoff for refused messages and an unreachable sink: doubling from `retry_base` up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl DispatchSettings {
    pub fn new(sink: &str) -> Self {
        Self {
            sink: sink.to_string(),
            finality: Finality::Latest,
            events: MessageFilter::default(),
            max_attempts: 10,
            page: 2_000,
            window: 20_000,
            poll_interval: Duration::from_millis(100),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// Why a dispatcher stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("sink {sink}: {source}")]
    Store { sink: String, source: StoreError },
}

impl DispatchError {
    /// A write refused because another process owns the sink now.
    pub fn is_fenced(&self) -> bool {
        matches!(self, DispatchError::Store { source: StoreError::Fenced { .. }, .. })
    }
}

/// Messages of one ordering key waiting behind a refused one.
#[derive(Debug)]
struct BlockedKey {
    queue: VecDeque<OutboxMessage>,
    attempts: u32,
    next_try: Instant,
    last_error: String,
}

/// What one round did, for the caller's pacing and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    pub read: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
}

impl RoundOutcome {
    fn idle(&self) -> bool {
        self.read == 0 && self.delivered == 0 && self.dead_lettered == 0
    }
}

/// One sink's dispatcher.
pub struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    sink: Arc<dyn Sink>,
    settings: DispatchSettings,
    metrics: DispatchMetrics,
    /// Stored position: every row up to it is done.
    position: u64,
    /// Highest seq read into memory.
    fetched: u64,
    /// Seqs read and not yet done.
    outstanding: BTreeSet<u64>,
    ready: VecDeque<OutboxMessage>,
    blocked: HashMap<String, BlockedKey>,
    /// Ids of events a reorg removed before this sink received them: their retractions are not sent.
    never_sent: HashSet<String>,
    sink_down_until: Option<Instant>,
    sink_failures: u32,
    jitter: u64,
    loaded: bool,
    /// The page after `fetched`, read while the previous one was being published: (after, rows).
    prefetched: Option<(u64, Vec<OutboxEntry>)>,
    /// The sink's lease while this dispatcher owns it (several processes on one database): positions and
    /// dead letters are written under it, and refused once another process took the sink over.
    fence: Option<gemgate_domain::cluster::Fence>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sink", &self.settings.sink)
            .field("position", &self.position)
            .field("outstanding", &self.outstanding.len())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        sink: Arc<dyn Sink>,
        settings: DispatchSettings,
        metrics: DispatchMetrics,
    ) -> Self {
        Self {
            store,
            sink,
            settings,
            metrics,
            position: 0,
            fetched: 0,
            outstanding: BTreeSet::new(),
            ready: VecDeque::new(),
            blocked: HashMap::new(),
            never_sent: HashSet::new(),
            sink_down_until: None,
            sink_failures: 0,
            jitter: 0,
            loaded: false,
            prefetched: None,
            fence: None,
        }
    }

    /// Starts (or ends, with `None`) a term under the sink's lease: the next round reads the stored
    /// position again, since another process may have delivered from it meanwhile.
    pub fn set_fence(&mut self, fence: Option<gemgate_domain::cluster::Fence>) {
        self.fence = fence;
        self.loaded = false;
    }

    pub fn sink_name(&self) -> &str {
        &self.settings.sink
    }

    /// The stored position (every outbox row up to it delivered or dead-lettered).
    pub fn position(&self) -> u64 {
        self.position
    }

    fn store_err(&self) -> impl Fn(StoreError) -> DispatchError + '_ {
        |source| DispatchError::Store { sink: self.settings.sink.clone(), source }
    }

    fn label(&self) -> SinkLabel {
        SinkLabel { sink: self.settings.sink.clone() }
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        self.jitter += 1;
        let delay = backoff_delay(self.settings.retry_base, self.settings.retry_max, attempt, self.jitter);
        // Never retry in a tight loop: at least a tenth of the base delay.
        delay.max(self.settings.retry_base / 10)
    }

    /// Runs rounds until `shutdown` resolves; a store error is retried with backoff. Under a lease
    /// (`set_fence`), a write refused for a newer token ends the run with that error (`is_fenced`).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DispatchError> {
        self.run_until(shutdown).await
    }

    /// `run` without giving the dispatcher up: a lease loop runs one term after another with it.
    pub async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), DispatchError> {
        tokio::pin!(shutdown);
        let mut failures = 0;
        loop {
            let pause = match self.round().await {
                Ok(outcome) if outcome.idle() => Some(self.idle_wait()),
                Ok(_) => {
                    failures = 0;
                    None
                }
                Err(error) if self.fence.is_some() && error.is_fenced() => return Err(error),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(sink = %self.settings.sink, %error, failures, "dispatch round failed; retrying");
                    Some(self.backoff(failures))
                }
            };
            match pause {
                Some(pause) => {
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                None => {
                    if futures_ready(&mut shutdown).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// How long to sleep when a round did nothing: the poll interval, or less when a retry is due sooner.
    fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        let mut wait = self.settings.poll_interval;
        let due = self.blocked.values().map(|b| b.next_try).chain(self.sink_down_until).min();
        if let Some(due) = due {
            wait = wait.min(due.saturating_duration_since(now));
        }
        wait.max(Duration::from_millis(1))
    }

    /// One round: read new rows, publish what is ready, retry blocked keys that are due, store the position.
    pub async fn round(&mut self) -> Result<RoundOutcome, DispatchError> {
        // One read of the stored position per round: it gives the start, a rewind and the pause flag.
        let stored = self.store.sink_position(&self.settings.sink).await.map_err(self.store_err())?;
        if !self.loaded || stored.position < self.position {
            if self.loaded {
                // Rewound (`sinks replay`, `sinks requeue`): forget what was read and read again from there.
                tracing::info!(sink = %self.settings.sink, from = stored.position, "position moved back; delivering again from there");
            }
            self.position = stored.position;
            self.fetched = stored.position;
            self.outstanding.clear();
            self.ready.clear();
            self.blocked.clear();
            self.prefetched = None;
            self.loaded = true;
        }
        if stored.paused {
            return Ok(RoundOutcome::default());
        }
        let mut outcome = RoundOutcome { read: self.read().await?, ..RoundOutcome::default() };
        let sink_up = self.sink_down_until.is_none_or(|until| Instant::now() >= until);
        if sink_up {
            // The next page is read while this one is published.
            let (store, after, page) = (self.store.clone(), self.fetched, self.settings.page);
            let room = self.outstanding.len() < self.settings.window && outcome.read > 0;
            let prefetch =
                async move { if room { Some(store.outbox_after(after, page).await) } else { None } };
            let (delivered, prefetched) = tokio::join!(self.publish_ready(), prefetch);
            outcome.delivered += delivered;
            // An empty page is not kept: rows committed meanwhile must not wait a poll interval.
            if let Some(Ok(rows)) = prefetched
                && !rows.is_empty()
            {
                self.prefetched = Some((after, rows));
            }
            let (delivered, dead) = self.retry_blocked().await?;
            outcome.delivered += delivered;
            outcome.dead_lettered += dead;
        }
        self.store_position().await?;
        let label = self.label();
        self.metrics.delivered.get_or_create(&label).inc_by(outcome.delivered as u64);
        self.metrics.position.get_or_create(&label).set(self.position as i64);
        self.metrics.blocked_keys.get_or_create(&label).set(self.blocked.len() as i64);
        Ok(outcome)
    }

    /// Reads the rows after the last one read, up to the first that is not final enough for this sink.
    async fn read(&mut self) -> Result<usize, DispatchError> {
        if self.outstanding.len() >= self.settings.window {
            return Ok(0);
        }
        let entries = match self.prefetched.take() {
            // Read while the previous page was published, right after where reading stopped.
            Some((after, rows)) if after == self.fetched => rows,
            _ => self.store.outbox_after(self.fetched, self.settings.page).await.map_err(self.store_err())?,
        };
        let mut heads: HashMap<ChainId, Option<Heads>> = HashMap::new();
        let mut read = 0;
        for entry in entries {
            let message = match entry {
                OutboxEntry::Reverted { seq, id } => {
                    self.never_sent.insert(id);
                    self.fetched = seq;
                    read += 1;
                    continue;
                }
                OutboxEntry::Message(message) => message,
            };
            if !self.final_enough(&message, &mut heads).await? {
                // Rows are in commit order: what follows is not final either (or belongs to a later batch).
                break;
            }
            self.fetched = message.seq;
            read += 1;
            if message.status == EventStatus::Retracted
                && (!self.settings.finality.sees_retractions() || self.never_sent.remove(&message.id))
            {
                continue;
            }
            if !self.wanted(&message) {
                continue;
            }
            self.outstanding.insert(message.seq);
            match self.blocked.get_mut(&message.ordering_key) {
                Some(blocked) => blocked.queue.push_back(message),
                None => self.ready.push_back(message),
            }
        }
        Ok(read)
    }

    async fn final_enough(
        &self,
        message: &OutboxMessage,
        heads: &mut HashMap<ChainId, Option<Heads>>,
    ) -> Result<bool, DispatchError> {
        let Some(block) = message.block_number else { return Ok(true) };
        if self.settings.finality == Finality::Latest {
            return Ok(true);
        }
        let chain_heads = match heads.get(&message.chain_id) {
            Some(h) => *h,
            None => {
                let h = self.store.chain_heads(message.chain_id).await.map_err(self.store_err())?;
                heads.insert(message.chain_id, h);
                h
            }
        };
        let Some(h) = chain_heads else { return Ok(false) };
        Ok(match self.settings.finality {
            Finality::Latest => true,
            Finality::Safe => block <= h.safe,
            Finality::Finalized => block <= h.finalized,
            Finality::Confirmations(n) => block + n <= h.latest,
        })
    }

    /// Whether the sink's event filter lets this message through.
    fn wanted(&self, message: &OutboxMessage) -> bool {
        self.settings.events.matches(message)
    }

    fn done(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
    }

    /// Publishes the ready messages. A refusal blocks that message's key (with its later messages); the
    /// other keys' messages are published on. An unreachable sink stops the round and backs off.
    async fn publish_ready(&mut self) -> usize {
        let mut delivered = 0;
        while !self.ready.is_empty() {
            let batch: Vec<OutboxMessage> = self.ready.drain(..).collect();
            match self.sink.publish(&batch).await {
                Ok(()) => {
                    delivered += batch.len();
                    batch.iter().for_each(|m| self.done(m.seq));
                    self.sink_failures = 0;
                }
                Err(SinkFailure { delivered: n, error }) => {
                    let n = n.min(batch.len());
                    delivered += n;
                    batch[..n].iter().for_each(|m| self.done(m.seq));
                    let mut rest = batch.into_iter().skip(n);
                    let Some(failed) = rest.next() else { break };
                    if error.is_retryable() {
                        self.sink_unreachable(&error);
                        self.ready.push_back(failed);
                        self.ready.extend(rest);
                        break;
                    }
                    let key = failed.ordering_key.clone();
                    tracing::warn!(sink = %self.settings.sink, id = %failed.id, %error, "message refused; its key waits for a retry");
                    let next_try = Instant::now() + self.backoff(1);
                    let mut queue = VecDeque::from([failed]);
                    for message in rest {
                        if message.ordering_key == key {
                            queue.push_back(message);
                        } else {
                            self.ready.push_back(message);
                        }
                    }
                    self.blocked.insert(
                        key,
                        BlockedKey { queue, attempts: 1, next_try, last_error: error.to_string() },
                    );
                    self.metrics.refused.get_or_create(&self.label()).inc();
                }
            }
        }
        delivered
    }

    fn sink_unreachable(&mut self, error: &SinkError) {
        self.sink_failures += 1;
        let delay = self.backoff(self.sink_failures);
        tracing::warn!(sink = %self.settings.sink, %error, retry_in = ?delay, "sink unreachable; backlog waits in the outbox");
        self.sink_down_until = Some(Instant::now() + delay);
        self.metrics.unavailable.get_or_create(&self.label()).inc();
    }

    /// Retries the blocked keys that are due, dead-lettering a message refused `max_attempts` times.
    async fn retry_blocked(&mut self) -> Result<(usize, usize), DispatchError> {
        let now = Instant::now();
        let due: Vec<String> =
            self.blocked.iter().filter(|(_, b)| b.next_try <= now).map(|(k, _)| k.clone()).collect();
        let (mut delivered, mut dead) = (0, 0);
        for key in due {
            let Some(mut blocked) = self.blocked.remove(&key) else { continue };
            if blocked.attempts >= self.settings.max_attempts {
                if let Some(head) = blocked.queue.pop_front() {
                    self.store
                        .dead_letter(
                            &self.settings.sink,
                            &head,
                            blocked.attempts,
                            &blocked.last_error,
                            self.fence.as_ref(),
                        )
                        .await
                        .map_err(self.store_err())?;
                    tracing::error!(sink = %self.settings.sink, id = %head.id, attempts = blocked.attempts, error = %blocked.last_error, "message dead-lettered");
                    self.metrics.dead_letters.get_or_create(&self.label()).inc();
                    self.done(head.seq);
                    dead += 1;
                }
                blocked.attempts = 0;
            }
            let batch: Vec<OutboxMessage> = blocked.queue.iter().cloned().collect();
            if batch.is_empty() {
                continue;
            }
            match self.sink.publish(&batch).await {
                Ok(()) => {
                    delivered += batch.len();
                    batch.iter().for_each(|m| self.done(m.seq));
                }
                Err(SinkFailure { delivered: n, error }) => {
                    let n = n.min(batch.len());
                    delivered += n;
                    batch[..n].iter().for_each(|m| self.done(m.seq));
                    blocked.queue.drain(..n);
                    if error.is_retryable() {
                        self.sink_unreachable(&error);
                        blocked.next_try = self.sink_down_until.unwrap_or(now);
                    } else {
                        if n > 0 {
                            blocked.attempts = 0;
                        }
                        blocked.attempts += 1;
                        blocked.last_error = error.to_string();
                        blocked.next_try = Instant::now() + self.backoff(blocked.attempts);
                        self.metrics.refused.get_or_create(&self.label()).inc();
                    }
                    self.blocked.insert(key, blocked);
                    if self.sink_down_until.is_some_and(|until| until > Instant::now()) {
                        break;
                    }
                }
            }
        }
        Ok((delivered, dead))
    }

    /// Moves the stored position up to the last row before the oldest one still outstanding.
    async fn store_position(&mut self) -> Result<(), DispatchError> {
        let position = self.outstanding.first().map_or(self.fetched, |first| first - 1);
        if position > self.position {
            self.store
                .advance_sink(&self.settings.sink, position, self.fence.as_ref())
                .await
                .map_err(self.store_err())?;
            self.position = position;
        }
        Ok(())
    }
}

/// Whether `shutdown` has already resolved, without waiting for it.
async fn futures_ready(shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        biased;
        () = shutdown.as_mut() => true,
        () = std::future::ready(()) => false,
    }
}

#[cfg(test)]
mod tests;
