//! New heads pushed over a websocket (`eth_subscribe("newHeads")`): the indexer wakes on each one instead
//! of waiting for its poll interval. The subscription reconnects with backoff when the socket drops; the
//! indexer keeps polling meanwhile, so a dead websocket slows it down but never stops it.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use alloy::transports::ws::WsConnect;
use futures::StreamExt;
use tokio::sync::watch;

/// Reconnect delays double from 250 ms to 30 s.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Subscribes to new heads at `url` (`label` is its redacted form, for logs). The receiver holds the
/// latest head number seen (0 before the first); the task ends when every receiver is dropped.
pub fn subscribe_heads(url: url::Url, label: String) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(250);
        loop {
            match follow(&url, &tx).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(endpoint = %label, %error, retry_in_ms = delay.as_millis() as u64, "websocket heads lost");
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    });
    rx
}

/// Follows heads until the socket fails (`Err`) or nobody listens any more (`Ok`).
async fn follow(url: &url::Url, tx: &watch::Sender<u64>) -> Result<(), String> {
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_ws(WsConnect::new(url.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    let subscription = provider.subscribe_blocks().await.map_err(|e| e.to_string())?;
    let mut heads = subscription.into_stream();
    loop {
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            head = heads.next() => match head {
                Some(header) => {
                    if tx.send(header.number).is_err() {
                        return Ok(());
                    }
                }
                None => return Err("subscription ended".into()),
            },
        }
    }
}
