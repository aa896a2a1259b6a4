//! The Prometheus registry. Components register their own metrics under a sub-registry with their prefix
//! (`gemgate_indexer_...`); `/metrics` encodes the whole tree in the text exposition format.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A shared, cloneable handle to the process's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
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
        Self { registry: Arc::new(Mutex::new(registry)) }
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
}
