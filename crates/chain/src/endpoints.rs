//! Several RPC endpoints for one chain, used in order of preference and health: a request goes to the
//! first endpoint that is not cooling down after failures; a retryable failure puts that endpoint on a
//! growing cooldown and the request is retried (with backoff and jitter) on the next one.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use gemgate_domain::ChainError;

use crate::metrics::{CallLabels, ErrorLabels, MethodLabels, RpcMetrics};

/// One RPC URL and its health.
#[derive(Debug)]
pub struct Endpoint {
    /// The URL with credentials masked; the only form that reaches logs and errors.
    pub label: String,
    pub provider: DynProvider,
    consecutive_failures: AtomicU32,
    cooldown_until: Mutex<Option<Instant>>,
    /// The highest `latest` block this endpoint reported; requests about later blocks go elsewhere.
    known_head: AtomicU64,
}

impl Endpoint {
    /// An endpoint over HTTP. `label` must already be redacted.
    pub fn http(url: url::Url, label: String) -> Self {
        let provider = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        Self {
            label,
            provider,
            consecutive_failures: AtomicU32::new(0),
            cooldown_until: Mutex::new(None),
            known_head: AtomicU64::new(0),
        }
    }

    /// Records the endpoint's latest block.
    pub fn saw_head(&self, number: u64) {
        self.known_head.store(number, Ordering::Relaxed);
    }

    pub fn known_head(&self) -> u64 {
        self.known_head.load(Ordering::Relaxed)
    }

    fn available(&self, now: Instant) -> bool {
        self.cooldown_until.lock().map(|until| until.is_none_or(|t| t <= now)).unwrap_or(true)
    }

    fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if let Ok(mut until) = self.cooldown_until.lock() {
            *until = None;
        }
    }

    fn failed(&self, policy: &RetryPolicy) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let cooldown = policy.delay(failures, 0).min(policy.max_cooldown);
        if let Ok(mut until) = self.cooldown_until.lock() {
            *until = Some(Instant::now() + cooldown);
        }
    }
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest an unhealthy endpoint is skipped before it is tried again.
    pub max_cooldown: Duration,
    /// The longest one call may take before it counts as a transport failure (retried elsewhere). Without
    /// it a connection that never answers would hold its caller forever.
    pub call_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Eight attempts with delays doubling from 100 ms to 5 s ride out a node restart (about 15 s)
        // without holding a batch for minutes.
        Self {
            attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(30),
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a random delay in `[0, min(max, base * 2^attempt))`.
    pub fn delay(&self, attempt: u32, jitter_seed: u64) -> Duration {
        gemgate_domain::backoff::backoff_delay(self.base_delay, self.max_delay, attempt, jitter_seed)
    }
}

/// The endpoints of a chain and the retry loop over them.
#[derive(Debug)]
pub struct Endpoints {
    endpoints: Vec<Arc<Endpoint>>,
    policy: RetryPolicy,
    jitter: AtomicU64,
    /// The chain's id and the process's RPC metrics, when counted.
    metrics: Option<(u64, RpcMetrics)>,
}

impl Endpoints {
    pub fn new(endpoints: Vec<Endpoint>, policy: RetryPolicy) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Arc::new).collect(),
            policy,
            jitter: AtomicU64::new(0x5EED),
            metrics: None,
        }
    }

    /// Counts every attempt of chain `chain_id` in `metrics`.
    pub fn with_metrics(mut self, chain_id: u64, metrics: RpcMetrics) -> Self {
        self.metrics = Some((chain_id, metrics));
        self
    }

    /// Records one attempt of `method` on `endpoint` that started at `started`.
    pub fn observe(
        &self,
        method: &'static str,
        endpoint: &Endpoint,
        started: Instant,
        error: Option<&ChainError>,
    ) {
        let Some((chain_id, metrics)) = &self.metrics else { return };
        let chain_id = *chain_id;
        let endpoint = endpoint.label.clone();
        metrics
            .latency
            .get_or_create(&MethodLabels { chain_id, method })
            .observe(started.elapsed().as_secs_f64());
        if let Some(error) = error {
            let labels = ErrorLabels { chain_id, method, endpoint: endpoint.clone(), kind: error.kind() };
            metrics.errors.get_or_create(&labels).inc();
        }
        metrics.calls.get_or_create(&CallLabels { chain_id, method, endpoint }).inc();
    }

    pub fn all(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    pub fn labels(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.label.as_str()).collect()
    }

    /// The endpoint to use now: the first available in configured order that has seen block `needs`,
    /// else the first available, else the one whose cooldown ends first.
    fn pick(&self, skip: Option<usize>, needs: u64) -> usize {
        let now = Instant::now();
        let candidates = (0..self.endpoints.len()).filter(|i| Some(*i) != skip || self.endpoints.len() == 1);
        let available = candidates
            .clone()
            .find(|&i| self.endpoints[i].available(now) && self.endpoints[i].known_head() >= needs)
            .or_else(|| candidates.clone().find(|&i| self.endpoints[i].available(now)));
        available.unwrap_or_else(|| {
            candidates
                .min_by_key(|&i| self.endpoints[i].cooldown_until.lock().ok().and_then(|u| *u).unwrap_or(now))
                .unwrap_or(0)
        })
    }

    /// Runs `call` on a healthy endpoint, retrying retryable errors on the next endpoint with backoff.
    /// A non-retryable error (a refused range, a bad request) is returned at once.
    /// `needs` is the highest block the call is about (0 when none): endpoints known to have it go first.
    /// `method` names the call in metrics (the main JSON-RPC method it makes).
    pub async fn call<T, F, Fut>(
        &self,
        method: &'static str,
        needs: u64,
        mut call: F,
    ) -> Result<T, ChainError>
    where
        F: FnMut(Arc<Endpoint>) -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut last_failed = None;
        let mut attempt = 0;
        loop {
            let index = self.pick(last_failed, needs);
            let endpoint = &self.endpoints[index];
            let started = Instant::now();
            let outcome = match tokio::time::timeout(self.policy.call_timeout, call(endpoint.clone())).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ChainError::Transport {
                    endpoint: endpoint.label.clone(),
                    message: format!("no answer within {:?}", self.policy.call_timeout),
                }),
            };
            self.observe(method, endpoint, started, outcome.as_ref().err());
            match outcome {
                Ok(value) => {
                    endpoint.succeeded();
                    return Ok(value);
                }
                Err(error) if attempt + 1 < self.policy.attempts && retry_elsewhere(&error) => {
                    endpoint.failed(&self.policy);
                    tracing::warn!(endpoint = %endpoint.label, attempt, %error, "rpc call failed; retrying");
                    last_failed = Some(index);
                    attempt += 1;
                    let seed = self.jitter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.policy.delay(attempt, seed)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Whether another attempt (maybe on another endpoint) can succeed.
fn retry_elsewhere(error: &ChainError) -> bool {
    error.is_retryable() || matches!(error, ChainError::InvalidResponse { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that accepts connections and never answers: the call fails as a transport error after the
    /// policy's timeout, on every attempt, instead of hanging.
    #[tokio::test]
    async fn a_node_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let url: url::Url = format!("http://{address}").parse().unwrap();
        let policy = RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(10),
            call_timeout: Duration::from_millis(200),
            ..RetryPolicy::default()
        };
        let metrics = RpcMetrics::default();
        let endpoints = Endpoints::new(vec![Endpoint::http(url, "silent".into())], policy)
            .with_metrics(7, metrics.clone());
        let started = Instant::now();
        let outcome = endpoints
            .call("eth_blockNumber", 0, |e| async move {
                e.provider.get_block_number().await.map_err(|err| ChainError::Transport {
                    endpoint: e.label.clone(),
                    message: err.to_string(),
                })
            })
            .await;
        match outcome {
            Err(ChainError::Transport { endpoint, message }) => {
                assert_eq!(endpoint, "silent");
                assert!(message.contains("no answer within"), "{message}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "two attempts of 200 ms, not a hang");
        let labels =
            |kind| ErrorLabels { chain_id: 7, method: "eth_blockNumber", endpoint: "silent".into(), kind };
        assert_eq!(
            metrics.errors.get_or_create(&labels("transport")).get(),
            2,
            "both attempts counted as errors"
        );
        let calls = CallLabels { chain_id: 7, method: "eth_blockNumber", endpoint: "silent".into() };
        assert_eq!(metrics.calls.get_or_create(&calls).get(), 2);
        silent.abort();
    }

    #[test]
    fn backoff_grows_to_its_cap_and_jitter_stays_below_it() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, 0), Duration::from_millis(100));
        assert_eq!(policy.delay(3, 0), Duration::from_millis(800));
        assert_eq!(policy.delay(30, 0), Duration::from_secs(5));
        for seed in 1..200 {
            assert!(policy.delay(4, seed) < Duration::from_millis(1_600));
        }
        let spread: std::collections::BTreeSet<_> = (1..50).map(|s| policy.delay(4, s)).collect();
        assert!(spread.len() > 10, "jitter must spread retries");
    }
}
