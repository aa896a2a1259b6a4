//! The view-call proxy's metrics, registered under `gemgate_calls_`: results served from the cache, calls
//! that went to the node, calls that shared another's round trip, batches sent through Multicall3, and the
//! node round trips saved by all three.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabel {
    pub chain_id: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CallMetrics {
    /// Calls answered from the cache.
    pub hits: Family<ChainLabel, Counter>,
    /// Calls the cache did not have.
    pub misses: Family<ChainLabel, Counter>,
    /// Calls that shared an identical call already in flight.
    pub coalesced: Family<ChainLabel, Counter>,
    /// `eth_call` round trips made (a Multicall3 batch is one).
    pub rpc_calls: Family<ChainLabel, Counter>,
    /// Round trips avoided: cache hits, coalesced calls, and every batched call but one per batch.
    pub rpc_saved: Family<ChainLabel, Counter>,
    /// Multicall3 batches sent.
    pub batches: Family<ChainLabel, Counter>,
    pub cache_entries: Gauge,
    pub cache_bytes: Gauge,
}

impl CallMetrics {
    /// The set under `gemgate_calls_`, registered on first use.
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        metrics.shared("calls", |r| {
            let m = Self::default();
            r.register("cache_hits", "view calls answered from the cache", m.hits.clone());
            r.register("cache_misses", "view calls the cache did not have", m.misses.clone());
            r.register(
                "coalesced",
                "view calls that shared an identical call in flight",
                m.coalesced.clone(),
            );
            r.register(
                "rpc_calls",
                "eth_call round trips made (a Multicall3 batch is one)",
                m.rpc_calls.clone(),
            );
            r.register(
                "rpc_saved",
                "node round trips avoided by the cache, coalescing and batching",
                m.rpc_saved.clone(),
            );
            r.register("multicall_batches", "Multicall3 batches sent", m.batches.clone());
            r.register("cache_entries", "results held in the cache", m.cache_entries.clone());
            r.register("cache_bytes", "bytes held in the cache (approximately)", m.cache_bytes.clone());
            m
        })
    }
}
