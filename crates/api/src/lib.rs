//! The HTTP API: `router(state)` builds the axum router; the caller binds the socket. Reads of events,
//! projections and status under `/v1`, the OpenAPI document, health, readiness and Prometheus metrics.
//! Every input is validated and refused with a 4xx that says what is wrong; 5xx bodies are generic and
//! the cause is logged once.

// The OpenAPI document is one `json!` literal.
#![recursion_limit = "256"]

mod auth;
mod cors;
mod error;
mod handlers;
mod http_metrics;
mod openapi;
mod transactions;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use gemgate_config::ApiSettings;
use gemgate_domain::ports::{DeliveryControl, Ledger, OutboxStore, ReadModel};
use gemgate_telemetry::Metrics;

pub use error::ApiError;
pub use http_metrics::HttpMetrics;

/// A Gemforce contract the trade-deal endpoints look up by id.
#[derive(Debug, Clone)]
pub struct GemforceContract {
    pub chain_id: u64,
    pub address: alloy_primitives::Address,
}

/// The store as the API reaches it: reads, delivery control, the outbox and the transaction ledger, each
/// a port.
#[derive(Clone)]
pub struct StorePorts {
    pub reads: Arc<dyn ReadModel>,
    pub delivery: Arc<dyn DeliveryControl>,
    pub outbox: Arc<dyn OutboxStore>,
    /// Transactions are listed from here even where this process runs no transaction manager.
    pub ledger: Arc<dyn Ledger>,
}

impl StorePorts {
    /// The four ports over one store.
    pub fn of<S>(store: &S) -> Self
    where
        S: ReadModel + DeliveryControl + OutboxStore + Ledger + Clone + 'static,
    {
        Self {
            reads: Arc::new(store.clone()),
            delivery: Arc::new(store.clone()),
            outbox: Arc::new(store.clone()),
            ledger: Arc::new(store.clone()),
        }
    }
}

impl std::fmt::Debug for StorePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePorts").field("tables", &self.reads.projection_tables()).finish_non_exhaustive()
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: StorePorts,
    pub metrics: Metrics,
    pub settings: Arc<ApiSettings>,
    pub gemforce: Arc<Vec<GemforceContract>>,
    /// The configured sinks, for status and the sink endpoints.
    pub sinks: Arc<Vec<SinkInfo>>,
    pub webhooks: WebhookMetrics,
    pub http: HttpMetrics,
    /// The transaction manager's front door (`None` without chains and signers configured).
    pub txm: Option<Arc<gemgate_txm::TxManager>>,
}

/// Inbound webhook counters, registered under `gemgate_api_webhooks_`.
#[derive(Debug, Clone, Default)]
pub struct WebhookMetrics {
    pub accepted: prometheus_client::metrics::counter::Counter,
    /// Requests whose signature did not verify.
    pub rejected: prometheus_client::metrics::counter::Counter,
}

impl WebhookMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register_with("api_webhooks", |r| {
            r.register("accepted", "verified inbound webhooks (duplicates included)", m.accepted.clone());
            r.register(
                "rejected",
                "inbound webhooks refused for a bad or missing signature",
                m.rejected.clone(),
            );
        });
        m
    }
}

/// A configured sink as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkInfo {
    pub name: String,
    pub kind: String,
    pub finality: String,
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/status", get(handlers::status))
        .route("/events", get(handlers::events))
        .route("/trade-deals", get(handlers::trade_deals))
        .route("/trade-deals/{id}", get(handlers::trade_deal))
        .route("/projections/{table}", get(handlers::projection_rows))
        .route("/projections/{table}/{key}", get(handlers::projection_row))
        .route("/sinks", get(handlers::sinks))
        .route("/stream", get(handlers::stream))
        .route("/transactions", get(transactions::list))
        .route("/transactions/{id}", get(transactions::get))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_read));
    let admin = Router::new()
        .route("/sinks/{name}/pause", axum::routing::post(handlers::pause_sink))
        .route("/sinks/{name}/resume", axum::routing::post(handlers::resume_sink))
        .route("/sinks/{name}/replay", axum::routing::post(handlers::replay_sink))
        .route("/sinks/{name}/requeue", axum::routing::post(handlers::requeue_sink))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_admin));
    let transact = Router::new()
        .route("/transactions", axum::routing::post(transactions::create))
        .route("/transactions/raw", axum::routing::post(transactions::create_raw))
        .route("/transactions/{id}/cancel", axum::routing::post(transactions::cancel))
        .route("/transactions/{id}/speed-up", axum::routing::post(transactions::speed_up))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_transact));
    Router::new()
        .nest("/v1", v1.merge(admin).merge(transact))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/webhooks/gemforce", axum::routing::post(handlers::gemforce_webhook))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        // Outermost first: CORS answers preflights before anything else runs; metrics see every answer.
        .layer(axum::middleware::from_fn_with_state(state.http.clone(), http_metrics::track))
        .layer(axum::middleware::from_fn_with_state(Arc::new(state.settings.cors.clone()), cors::cors))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
