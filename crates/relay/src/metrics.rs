//! The relayer's metrics, registered under `gemgate_relay_`: requests by relayer and outcome (`accepted`,
//! `repeat` for a signed request seen before, or the refusal's code).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub relayer: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    pub requests: Family<OutcomeLabel, Counter>,
}

impl RelayMetrics {
    /// The set under `gemgate_relay_`, registered on first use.
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        metrics.shared("relay", |r| {
            let m = Self::default();
            r.register("requests", "relay requests by relayer and outcome", m.requests.clone());
            m
        })
    }

    pub(crate) fn count(&self, relayer: &str, outcome: &str) {
        self.requests.get_or_create(&OutcomeLabel { relayer: relayer.into(), outcome: outcome.into() }).inc();
    }
}
