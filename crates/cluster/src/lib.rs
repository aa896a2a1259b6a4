//! Several gemgate processes on one database: each chain's indexer and each sink's dispatcher is led by
//! one process at a time through a lease with a fencing token (the `Leases` port); the others stand by
//! and take over when the lease expires. Sinks are shared fairly among the processes that dispatch.
//!
//! `Cluster::lead` is the loop every leased part runs in: stand by until the lease is ours, run the part
//! under its fence while a renewal task keeps the lease (renewed four times per time to live), and stop
//! it when the lease is lost (renewal refused, or not confirmed within the time to live), when fairness
//! asks this process to hand a sink over, or at shutdown; then give the lease up and stand by again.
//! Whatever the part writes carries the fence, so a paused old leader's late write is refused by the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gemgate_domain::StoreError;
use gemgate_domain::cluster::{Fence, LeaseKey, LeaseRole, LocalCluster, Standing, fair_share, runs_part};
use gemgate_domain::ports::Leases;
use tokio::sync::watch;

/// The future a part runs until: shutdown, or the end of its term.
pub type Stop = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A part that runs under a lease: the indexer of a chain, the dispatcher of a sink.
#[async_trait]
pub trait LeasedPart: Send {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Starts a term with `Some(fence)`, ends it with `None`.
    fn set_fence(&mut self, fence: Option<Fence>);
    /// Works until `stop` resolves (or a fatal error).
    async fn run_until(&mut self, stop: Stop) -> Result<(), Self::Error>;
    /// Whether `error` is a write refused for a newer token: the term is over, not the part.
    fn is_fenced(error: &Self::Error) -> bool;
    /// Called now and then while standing by: keep connections warm.
    async fn warm(&mut self) {}
}

#[async_trait]
impl LeasedPart for gemgate_indexer::Indexer {
    type Error = gemgate_indexer::IndexerError;

    fn set_fence(&mut self, fence: Option<Fence>) {
        gemgate_indexer::Indexer::set_fence(self, fence);
    }

    async fn run_until(&mut self, stop: Stop) -> Result<(), Self::Error> {
        gemgate_indexer::Indexer::run_until(self, stop).await
    }

    fn is_fenced(error: &Self::Error) -> bool {
        error.is_fenced()
    }

    async fn warm(&mut self) {
        // The node's head: its connection stays open, and the head metric stays current on a standby.
        if let Err(error) = self.chain_head().await {
            tracing::debug!(chain_id = self.chain_id(), %error, "standby could not read the head");
        }
    }
}

#[async_trait]
impl LeasedPart for gemgate_outbox::Dispatcher {
    type Error = gemgate_outbox::DispatchError;

    fn set_fence(&mut self, fence: Option<Fence>) {
        gemgate_outbox::Dispatcher::set_fence(self, fence);
    }

    async fn run_until(&mut self, stop: Stop) -> Result<(), Self::Error> {
        gemgate_outbox::Dispatcher::run_until(self, stop).await
    }

    fn is_fenced(error: &Self::Error) -> bool {
        error.is_fenced()
    }
}

/// A scheduled job (a snapshot schedule, reconciliation) run by one process at a time: its schedule runs
/// until the stop future resolves. Its writes are not fenced: a stale runner's last run only writes a
/// snapshot or a drift round that the next one supersedes.
pub struct Job(Box<dyn FnMut(Stop) -> Stop + Send>);

impl Job {
    pub fn new<F, Fut>(mut schedule: F) -> Self
    where
        F: FnMut(Stop) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Box::new(move |stop| Box::pin(schedule(stop))))
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

#[async_trait]
impl LeasedPart for Job {
    type Error = std::convert::Infallible;

    fn set_fence(&mut self, _: Option<Fence>) {}

    async fn run_until(&mut self, stop: Stop) -> Result<(), Self::Error> {
        (self.0)(stop).await;
        Ok(())
    }

    fn is_fenced(_: &Self::Error) -> bool {
        false
    }
}

/// Leases of one role shared fairly among the live processes that run `part`: a process takes no more
/// than its share (`fair_share`) and hands the extra over when another process joins.
#[derive(Debug, Clone)]
pub struct Share {
    pub part: &'static str,
    pub role: LeaseRole,
    pub total: usize,
}

/// Why a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Renewal was refused (another process took the lease) or could not be confirmed in time.
    Lost,
    /// This process holds more than its share: it hands this lease to a process with less.
    Rebalance,
}

/// This process's place among the processes on one database.
#[derive(Clone)]
pub struct Cluster {
    leases: Arc<dyn Leases>,
    ttl: Duration,
    local: Arc<LocalCluster>,
    /// Unix milliseconds (the wall clock: leases are compared across processes).
    clock: fn() -> u64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("holder", &self.local.holder).field("ttl", &self.ttl).finish()
    }
}

/// The wall clock in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Cluster {
    /// A process named `holder` running `parts`, with leases that last `ttl` without renewal.
    pub fn new(leases: Arc<dyn Leases>, holder: &str, parts: &[&str], ttl: Duration) -> Self {
        Self { leases, ttl, local: Arc::new(LocalCluster::new(holder, parts)), clock: unix_ms }
    }

    pub fn local(&self) -> Arc<LocalCluster> {
        self.local.clone()
    }

    pub fn holder(&self) -> &str {
        &self.local.holder
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    fn detail(&self) -> String {
        self.local.parts.join(",")
    }

    /// Announces this process (its process lease, the parts it runs in `detail`): fair shares count it
    /// from now on.
    pub async fn join(&self) -> Result<(), StoreError> {
        let key = LeaseKey::process(self.holder());
        self.leases
            .acquire(&key, self.holder(), Some(&self.detail()), (self.clock)(), self.ttl_ms())
            .await
            .map(|_| ())
    }

    /// Renews this process's lease until shutdown, then gives it (and so its fair share) up.
    pub async fn heartbeat(&self, mut shutdown: watch::Receiver<bool>) {
        let key = LeaseKey::process(self.holder());
        loop {
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(self.ttl / 4) => {}
            }
            if *shutdown.borrow() {
                break;
            }
            if let Err(error) = self.join().await {
                tracing::warn!(%error, "could not renew this process's lease");
            }
        }
        if let Ok(Some(fence)) =
            self.leases.acquire(&key, self.holder(), Some(&self.detail()), (self.clock)(), 0).await
        {
            let _ = self.leases.release(&fence, (self.clock)()).await;
        }
    }

    /// How many leases of the share's role this process may lead: its fair share among the live
    /// processes running the share's part (itself counted).
    async fn allowance(&self, share: &Share) -> Result<usize, StoreError> {
        let now = (self.clock)();
        let members = self
            .leases
            .leases()
            .await?
            .into_iter()
            .filter(|l| l.key.role == LeaseRole::Process && l.is_live(now))
            .filter(|l| l.holder == self.holder() || runs_part(l.detail.as_deref(), share.part))
            .count()
            .max(1);
        Ok(fair_share(share.total, members))
    }

    /// Runs `part` whenever this process holds `key`, standing by otherwise, until shutdown. Returns a
    /// fatal error of the part; a term ended by a lost lease only sends the part back to standby.
    pub async fn lead<P: LeasedPart>(
        &self,
        key: LeaseKey,
        part: &mut P,
        mut shutdown: watch::Receiver<bool>,
        share: Option<Share>,
    ) -> Result<(), P::Error> {
        let poll = (self.ttl / 6).max(Duration::from_millis(50));
        let mut last_warm: Option<Instant> = None;
        let mut standing_by = false;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let fence = match self.try_take(&key, share.as_ref()).await {
                Ok(fence) => fence,
                Err(error) => {
                    tracing::warn!(%key, %error, "could not read or take the lease");
                    None
                }
            };
            let Some(fence) = fence else {
                if !standing_by {
                    tracing::info!(%key, "standing by: another process leads");
                    self.local.set(&key, Standing::Standby);
                    standing_by = true;
                }
                if last_warm.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    part.warm().await;
                    last_warm = Some(Instant::now());
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                continue;
            };
            let since_ms = (self.clock)();
            tracing::info!(%key, token = fence.token, "leading");
            self.local.set(&key, Standing::Leader { token: fence.token, since_ms });

            let (ended_tx, mut ended_rx) = watch::channel(None);
            let ending = ended_rx.clone();
            let renewer = tokio::spawn(self.clone().keep(fence.clone(), share.clone(), ended_tx));
            part.set_fence(Some(fence.clone()));
            let mut stop_shutdown = shutdown.clone();
            let stop: Stop = Box::pin(async move {
                tokio::select! {
                    _ = wait_for(&mut stop_shutdown, |s| *s) => {}
                    _ = wait_for(&mut ended_rx, |e: &Option<Ending>| e.is_some()) => {}
                }
            });
            let result = part.run_until(stop).await;
            part.set_fence(None);
            renewer.abort();
            let ending = *ending.borrow();
            // Whatever ended the term, nothing of ours is in flight now: give the lease up so a standby
            // need not wait for it to expire (refused harmlessly when it was taken already).
            if let Err(error) = self.leases.release(&fence, (self.clock)()).await {
                tracing::warn!(%key, %error, "could not give the lease up; it expires by itself");
            }
            self.local.set(&key, Standing::Standby);
            standing_by = true;
            match result {
                Ok(()) if *shutdown.borrow() => return Ok(()),
                Ok(()) if ending == Some(Ending::Rebalance) => {
                    tracing::info!(%key, token = fence.token, "handed over; standing by");
                }
                Ok(()) => tracing::warn!(%key, token = fence.token, "lease lost; standing by"),
                Err(error) if P::is_fenced(&error) => {
                    tracing::warn!(%key, token = fence.token, %error, "lease taken over; standing by");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes the lease if this process may (within its share) and it is free, expired or ours.
    async fn try_take(&self, key: &LeaseKey, share: Option<&Share>) -> Result<Option<Fence>, StoreError> {
        if let Some(share) = share {
            let led = self.local.led(share.role);
            if !led.contains(key) && led.len() >= self.allowance(share).await? {
                return Ok(None);
            }
        }
        self.leases.acquire(key, self.holder(), None, (self.clock)(), self.ttl_ms()).await
    }

    /// The renewal task of one term: renews four times per time to live, and says when the term must
    /// end: the renewal was refused, none was confirmed within the time to live (a database outage, or
    /// this process was paused), or fairness asks for this lease to be handed over.
    async fn keep(self, fence: Fence, share: Option<Share>, ended: watch::Sender<Option<Ending>>) {
        let mut confirmed = Instant::now();
        loop {
            tokio::time::sleep(self.ttl / 4).await;
            match self.leases.renew(&fence, (self.clock)(), self.ttl_ms()).await {
                Ok(true) if confirmed.elapsed() < self.ttl => confirmed = Instant::now(),
                Ok(true) => {
                    // Renewed after the lease had run out (this process was paused): nobody took it, but a
                    // standby may be about to; end the term to be sure nothing runs on a stale view.
                    tracing::warn!(key = %fence.key, "lease renewed only after it had expired; ending the term");
                    let _ = ended.send(Some(Ending::Lost));
                    return;
                }
                Ok(false) => {
                    tracing::warn!(key = %fence.key, token = fence.token, "lease taken by another process");
                    let _ = ended.send(Some(Ending::Lost));
                    return;
                }
                Err(error) if confirmed.elapsed() >= self.ttl => {
                    tracing::warn!(key = %fence.key, %error, "lease not renewed within its time to live; ending the term");
                    let _ = ended.send(Some(Ending::Lost));
                    return;
                }
                Err(error) => tracing::warn!(key = %fence.key, %error, "lease renewal failed; retrying"),
            }
            if let Some(share) = &share {
                match self.allowance(share).await {
                    // Hand over the last of ours (by name) while holding more than the share.
                    Ok(allowed) => {
                        let led = self.local.led(share.role);
                        if led.len() > allowed && led.last() == Some(&fence.key) {
                            tracing::info!(key = %fence.key, led = led.len(), allowed, "handing over to share the load");
                            let _ = ended.send(Some(Ending::Rebalance));
                            return;
                        }
                    }
                    Err(error) => tracing::debug!(%error, "could not count the processes"),
                }
            }
        }
    }
}

/// Waits until the watched value satisfies `done` (or its sender is gone).
async fn wait_for<T>(rx: &mut watch::Receiver<T>, done: impl Fn(&T) -> bool) {
    let _ = rx.wait_for(|v| done(v)).await;
}
