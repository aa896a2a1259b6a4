//! The Prometheus registry. Components register their own metrics under a sub-registry with their prefix
//! (`gemgate_indexer_...`); `/metrics` encodes the whole tree in the text exposition format.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Buckets for request latencies (HTTP, RPC): 0.5 ms doubling to about 16 s; anything longer (an SSE
/// stream, a call that timed out at 30 s) lands in `+Inf`.
pub fn latency_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.000_5, 2.0, 16),
    )
}

/// A shared, cloneable handle to the process's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Metric sets registered through `shared`, by prefix: one per process however many parts use them.
    shared: Arc<Mutex<HashMap<String, Box<dyn Any + Send>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the `gemgate` prefix and a `gemgate_build_info` metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gemgate");
        registry.register(
            "build",
            "gemgate build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let up = Gauge::<i64>::default();
        up.set(1);
        registry.register("up", "1 while the process runs", up);
        Self { registry: Arc::new(Mutex::new(registry)), shared: Arc::default() }
    }

    /// The metric set registered under `gemgate_<prefix>_`, registered by `register` on first use. Parts
    /// that share one set (every chain's RPC calls, say) get the same handles instead of registering the
    /// same families twice, which would corrupt the exposition.
    pub fn shared<T: Clone + Send + 'static>(
        &self,
        prefix: &str,
        register: impl FnOnce(&mut Registry) -> T,
    ) -> T {
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = shared.get(prefix).and_then(|set| set.downcast_ref::<T>()) {
            return existing.clone();
        }
        let mut set = None;
        self.register_with(prefix, |r| set = Some(register(r)));
        let set = set.expect("register_with runs its closure");
        shared.insert(prefix.to_string(), Box::new(set.clone()));
        set
    }

    /// Lets a component add its metrics under `gemgate_<prefix>_`.
    pub fn register_with(&self, prefix: &str, f: impl FnOnce(&mut Registry)) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(registry.sub_registry_with_prefix(prefix));
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn components_register_under_their_prefix() {
        let metrics = Metrics::new();
        let events = Counter::<u64>::default();
        metrics.register_with("indexer", |r| {
            r.register("events", "events committed", events.clone());
        });
        events.inc_by(3);
        let text = metrics.encode();
        assert!(text.contains("gemgate_indexer_events_total 3"), "{text}");
        assert!(text.contains("gemgate_build_info"), "{text}");
    }

    #[test]
    fn a_shared_set_is_registered_once() {
        let metrics = Metrics::new();
        let register = |r: &mut Registry| {
            let calls = Counter::<u64>::default();
            r.register("calls", "calls", calls.clone());
            calls
        };
        let first = metrics.shared("rpc", register);
        let second = metrics.shared("rpc", register);
        first.inc();
        second.inc();
        let text = metrics.encode();
        assert_eq!(text.matches("# TYPE gemgate_rpc_calls counter").count(), 1, "{text}");
        assert!(text.contains("gemgate_rpc_calls_total 2"), "{text}");
    }
}
