//! New heads pushed over websockets (`eth_subscribe("newHeads")`): the indexer wakes on each one instead
//! of waiting for its poll interval. Every configured `ws` URL is subscribed on its own; each reconnects
//! with backoff and jitter when its socket drops, and logs and counts every change of state. The indexer
//! keeps polling meanwhile (at `chains.poll_interval`), so a dead websocket slows it down but never stops
//! it, and a pushed head is only a wake-up: the indexer still reads and checks the header over HTTP.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use alloy::transports::ws::WsConnect;
use futures::StreamExt;
use gemgate_domain::ChainId;
use gemgate_domain::backoff::{backoff_delay, splitmix};
use tokio::sync::watch;

use crate::metrics::{RpcMetrics, WsLabels};

/// Reconnect delays grow from 250 ms (full jitter) up to 30 s: a restarted node is found again within a
/// second or two, a node that stays down is not hammered.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// One websocket endpoint: the URL to connect to and its redacted label, the only form logged.
#[derive(Debug, Clone)]
pub struct WsEndpoint {
    pub url: url::Url,
    pub label: String,
}

/// Subscribes to new heads at every endpoint. The receiver is notified on every pushed head (from any
/// endpoint) and holds the latest head number seen (0 before the first); the tasks end when every
/// receiver is dropped.
pub fn subscribe_heads(
    chain_id: ChainId,
    endpoints: Vec<WsEndpoint>,
    metrics: Option<&RpcMetrics>,
) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    for (i, endpoint) in endpoints.into_iter().enumerate() {
        let subscription = Subscription {
            chain_id,
            labels: WsLabels { chain_id, endpoint: endpoint.label.clone() },
            endpoint,
            metrics: metrics.cloned(),
            tx: tx.clone(),
            seed: (chain_id << 8) ^ i as u64,
        };
        tokio::spawn(subscription.run());
    }
    rx
}

struct Subscription {
    chain_id: ChainId,
    endpoint: WsEndpoint,
    labels: WsLabels,
    metrics: Option<RpcMetrics>,
    tx: watch::Sender<u64>,
    seed: u64,
}

impl Subscription {
    async fn run(self) {
        let mut failures = 0u32;
        loop {
            let outcome = self.follow().await;
            self.set_connected(false);
            match outcome {
                Followed::Unwanted => return,
                Followed::Lost { error, was_up } => {
                    if was_up {
                        failures = 0;
                    }
                    let delay = backoff_delay(
                        FIRST_RECONNECT_DELAY,
                        MAX_RECONNECT_DELAY,
                        failures,
                        splitmix(self.seed.wrapping_add(u64::from(failures)) | 1),
                    )
                    .max(Duration::from_millis(50));
                    failures = failures.saturating_add(1);
                    if was_up {
                        tracing::warn!(chain_id = self.chain_id, endpoint = %self.endpoint.label, %error, retry_in_ms = delay.as_millis() as u64, "websocket heads lost; polling until it is back");
                    } else {
                        tracing::debug!(chain_id = self.chain_id, endpoint = %self.endpoint.label, %error, failures, retry_in_ms = delay.as_millis() as u64, "websocket still unreachable");
                    }
                    tokio::select! {
                        _ = self.tx.closed() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn set_connected(&self, up: bool) {
        if let Some(m) = &self.metrics {
            m.ws_connected.get_or_create(&self.labels).set(i64::from(up));
        }
    }

    /// Follows heads until the socket fails or nobody listens any more.
    async fn follow(&self) -> Followed {
        let lost = |error: String, was_up: bool| Followed::Lost { error, was_up };
        let provider = match ProviderBuilder::new()
            .disable_recommended_fillers()
            // Reconnecting is ours (backoff with jitter, logged and counted), not the transport's silent one.
            .connect_ws(WsConnect::new(self.endpoint.url.as_str()).with_max_retries(0))
            .await
        {
            Ok(p) => p,
            Err(e) => return lost(e.to_string(), false),
        };
        let subscription = match provider.subscribe_blocks().await {
            Ok(s) => s,
            Err(e) => return lost(e.to_string(), false),
        };
        self.set_connected(true);
        if let Some(m) = &self.metrics {
            m.ws_connects.get_or_create(&self.labels).inc();
        }
        tracing::info!(chain_id = self.chain_id, endpoint = %self.endpoint.label, "websocket heads subscribed");
        // Heads may have been missed while the socket was down: wake the indexer once now.
        self.tx.send_modify(|_| {});
        let mut heads = subscription.into_stream();
        loop {
            tokio::select! {
                _ = self.tx.closed() => return Followed::Unwanted,
                head = heads.next() => match head {
                    Some(header) => {
                        if let Some(m) = &self.metrics {
                            m.ws_heads.get_or_create(&self.labels).inc();
                        }
                        let number = header.number;
                        // Notify on every head (a reorg can repeat a height); keep the highest number.
                        self.tx.send_modify(|latest| *latest = (*latest).max(number));
                        if self.tx.is_closed() {
                            return Followed::Unwanted;
                        }
                    }
                    None => return lost("subscription ended".into(), true),
                },
            }
        }
    }
}

enum Followed {
    /// Every receiver is gone.
    Unwanted,
    /// The socket failed; `was_up` if the subscription had been established.
    Lost { error: String, was_up: bool },
}
