//! The dispatchers' Prometheus metrics, registered under `gemgate_dispatch_`, labelled by sink.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Debug, Clone, Default)]
pub struct DispatchMetrics {
    pub delivered: Family<SinkLabel, Counter>,
    pub refused: Family<SinkLabel, Counter>,
    pub unavailable: Family<SinkLabel, Counter>,
    pub dead_letters: Family<SinkLabel, Counter>,
    pub position: Family<SinkLabel, Gauge>,
    pub blocked_keys: Family<SinkLabel, Gauge>,
}

impl DispatchMetrics {
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        let m = Self::default();
        metrics.register_with("dispatch", |r| {
            r.register("delivered", "messages the sink confirmed", m.delivered.clone());
            r.register(
                "refused",
                "publishes the sink refused (retried, then dead-lettered)",
                m.refused.clone(),
            );
            r.register("unavailable", "times the sink could not be reached", m.unavailable.clone());
            r.register("dead_letters", "messages moved to the dead-letter table", m.dead_letters.clone());
            r.register("position", "outbox seq up to which everything is done", m.position.clone());
            r.register("blocked_keys", "ordering keys waiting for a retry", m.blocked_keys.clone());
        });
        m
    }
}
