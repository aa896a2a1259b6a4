//! HTTP metrics, registered under `gemgate_http_`: requests by method, route and status, and their
//! latency by route. Routes are the router's patterns (`/v1/transactions/{id}`), never the raw path, so
//! ids and probes of unknown paths cannot grow the label set; a request that matched no route is
//! counted as `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Writes answered whose audit entry could not be recorded.
    pub audit_failures: Counter,
    /// Requests refused for a rate limit.
    pub rate_limited: Counter,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(gemgate_telemetry::latency_histogram),
            audit_failures: Counter::default(),
            rate_limited: Counter::default(),
        }
    }
}

impl HttpMetrics {
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        let m = Self::default();
        metrics.register_with("http", |r| {
            r.register("requests", "HTTP requests answered, by method, route and status", m.requests.clone());
            r.register(
                "request_duration_seconds",
                "time from request to response head, by route",
                m.latency.clone(),
            );
            r.register(
                "audit_failures",
                "writes whose audit entry could not be recorded",
                m.audit_failures.clone(),
            );
            r.register("rate_limited", "requests refused with 429 for a rate limit", m.rate_limited.clone());
        });
        m
    }
}

/// The middleware: times every request and counts its answer.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics
        .latency
        .get_or_create(&RouteLabel { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    response
}
