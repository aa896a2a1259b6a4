//! RPC metrics, registered under `gemgate_rpc_`: calls and errors by chain, method and endpoint (errors also
//! by kind: `range_too_large`, `rate_limited`, `transport`, ...), call latency by method, and the state of
//! each websocket head subscription. Endpoints appear by their redacted label only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub chain_id: u64,
    pub method: &'static str,
    pub endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub chain_id: u64,
    pub method: &'static str,
    pub endpoint: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub chain_id: u64,
    pub method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WsLabels {
    pub chain_id: u64,
    pub endpoint: String,
}

/// Shared by every chain source and transaction RPC of a process; cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// Attempts, each on one endpoint (a retried call counts once per attempt).
    pub calls: Family<CallLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// 1 while the websocket head subscription of an endpoint is up.
    pub ws_connected: Family<WsLabels, Gauge>,
    /// Times a websocket subscription was (re)established.
    pub ws_connects: Family<WsLabels, Counter>,
    /// Heads pushed by websocket.
    pub ws_heads: Family<WsLabels, Counter>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(gemgate_telemetry::latency_histogram),
            ws_connected: Family::default(),
            ws_connects: Family::default(),
            ws_heads: Family::default(),
        }
    }
}

impl RpcMetrics {
    /// The process's RPC metrics (registered on first use, shared after).
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        metrics.shared("rpc", |r| {
            let m = Self::default();
            r.register("calls", "RPC calls made, by chain, method and endpoint", m.calls.clone());
            r.register(
                "errors",
                "RPC calls that failed, by chain, method, endpoint and kind",
                m.errors.clone(),
            );
            r.register("call_duration_seconds", "RPC call latency, by chain and method", m.latency.clone());
            r.register(
                "ws_connected",
                "1 while the websocket head subscription is up",
                m.ws_connected.clone(),
            );
            r.register("ws_connects", "websocket head subscriptions established", m.ws_connects.clone());
            r.register("ws_heads", "new heads pushed by websocket", m.ws_heads.clone());
            m
        })
    }
}
