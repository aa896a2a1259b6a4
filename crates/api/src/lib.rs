//! The HTTP API: `router(state)` builds the axum router; the caller binds the socket. Reads of events,
//! projections and status under `/v1`, the OpenAPI document, health, readiness and Prometheus metrics.
//! Every input is validated and refused with a 4xx that says what is wrong; 5xx bodies are generic and
//! the cause is logged once.

mod audit;
mod auth;
mod calls;
pub mod cluster;
mod cors;
mod dashboard;
pub mod dto;
mod error;
mod handlers;
pub mod history;
mod http_metrics;
pub mod jwt;
pub mod limits;
mod openapi;
pub mod parse;
mod relay;
mod sync;
mod transactions;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use gemgate_config::ApiSettings;
use gemgate_domain::ports::{DeliveryControl, Ledger, OutboxStore, ReadModel};
use gemgate_telemetry::Metrics;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    pub drift: Arc<dyn gemgate_domain::ports::DriftStore>,
    pub states: Arc<dyn gemgate_domain::ports::StateSnapshots>,
    pub leases: Arc<dyn gemgate_domain::ports::Leases>,
    pub audit: Arc<dyn gemgate_domain::ports::AuditLog>,
}

impl StorePorts {
    /// The four ports over one store.
    pub fn of<S>(store: &S) -> Self
    where
        S: ReadModel
            + DeliveryControl
            + OutboxStore
            + Ledger
            + gemgate_domain::ports::DriftStore
            + gemgate_domain::ports::StateSnapshots
            + gemgate_domain::ports::Leases
            + gemgate_domain::ports::AuditLog
            + Clone
            + 'static,
    {
        Self {
            reads: Arc::new(store.clone()),
            delivery: Arc::new(store.clone()),
            outbox: Arc::new(store.clone()),
            ledger: Arc::new(store.clone()),
            drift: Arc::new(store.clone()),
            states: Arc::new(store.clone()),
            leases: Arc::new(store.clone()),
            audit: Arc::new(store.clone()),
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
    /// The view-call proxy and the ABIs it encodes with (`None` without chains configured).
    pub calls: Option<Arc<ViewCalls>>,
    /// The ERC-2771 relayer (`None` without `[[relayers]]`).
    pub relay: Option<Arc<gemgate_relay::Relayer>>,
    /// What this process runs and leads, for `/ready` (`None`: the API alone).
    pub cluster: Option<Arc<gemgate_domain::cluster::LocalCluster>>,
    /// Bearer JWTs (`None` without `[api.jwt]`).
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    /// `[api.rate_limits]`' buckets.
    pub limits: Arc<limits::RateLimiter>,
    /// Parse Server sessions (`None` without `[api.parse]`).
    pub parse: Option<Arc<parse::ParseSessions>>,
    /// The last hour of progress for the dashboard (sampled while a router serves this state).
    pub history: Arc<history::History>,
}

/// What `POST /v1/call` needs: the proxy and the configured contracts' functions and errors.
#[derive(Debug)]
pub struct ViewCalls {
    pub proxy: gemgate_calls::CallProxy,
    pub catalog: gemgate_calls::Catalog,
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

/// The API's routes over `state`, and at `/v1/openapi.json` the OpenAPI document collected from the same
/// routes.
pub fn router(state: AppState) -> Router {
    history::spawn_sampler(state.clone());
    let (routes, mut document) = routes(&state).split_for_parts();
    openapi::with_alternative_credentials(&mut document);
    // Serialized once: the document is fixed for the life of the router (each answer shares the bytes).
    let document = axum::body::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    routes
        .route("/v1/openapi.json", get(move || std::future::ready((json, document.clone()))))
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .layer(axum::extract::DefaultBodyLimit::max(state.settings.max_body_bytes))
        // Outermost first: CORS answers preflights before anything else runs; metrics see every answer;
        // every error leaves in the one ApiError body.
        .layer(axum::middleware::from_fn(error::uniform))
        .layer(axum::middleware::from_fn_with_state(state.http.clone(), http_metrics::track))
        .layer(axum::middleware::from_fn_with_state(Arc::new(state.settings.cors.clone()), cors::cors))
        .with_state(state)
}

/// `/health`, `/ready` and `/metrics` alone: what a process without the API (`gemgate index`, `dispatch`,
/// `txm`) serves on `telemetry.listen` for probes and scrapers.
pub fn service_router(state: AppState) -> Router {
    let (routes, _) = OpenApiRouter::new()
        .routes(routes!(handlers::health))
        .routes(routes!(cluster::ready))
        .routes(routes!(handlers::metrics))
        .split_for_parts();
    routes.with_state(state)
}

/// Every route with its OpenAPI path, under the scope each group needs.
fn routes(state: &AppState) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(handlers::status))
        .routes(routes!(handlers::events))
        .routes(routes!(handlers::trade_deals))
        .routes(routes!(handlers::trade_deal))
        .routes(routes!(handlers::projection_rows))
        .routes(routes!(handlers::projection_row))
        .routes(routes!(handlers::sinks))
        .routes(routes!(handlers::stream))
        .routes(routes!(transactions::list))
        .routes(routes!(transactions::get))
        .routes(routes!(calls::call))
        .routes(routes!(sync::drift))
        .routes(routes!(sync::snapshots))
        .routes(routes!(cluster::cluster))
        .routes(routes!(history::history))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_read));
    // Writes are audited: the audit layer sits inside the scope check, which names the caller.
    let audited = || axum::middleware::from_fn_with_state(state.clone(), audit::record);
    let admin = OpenApiRouter::new()
        .routes(routes!(handlers::pause_sink))
        .routes(routes!(handlers::resume_sink))
        .routes(routes!(handlers::replay_sink))
        .routes(routes!(handlers::requeue_sink))
        .routes(routes!(audit::audit))
        .route_layer(audited())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_admin));
    let transact = OpenApiRouter::new()
        .routes(routes!(transactions::create))
        .routes(routes!(transactions::create_raw))
        .routes(routes!(transactions::cancel))
        .routes(routes!(transactions::speed_up))
        .route_layer(audited())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_transact));
    let relay = OpenApiRouter::new()
        .routes(routes!(relay::relay))
        .route_layer(audited())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_relay));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/v1", v1.merge(admin).merge(transact).merge(relay))
        .routes(routes!(handlers::gemforce_webhook))
        .routes(routes!(handlers::health))
        .routes(routes!(cluster::ready))
        .routes(routes!(handlers::metrics))
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer's address, for the anonymous rate limit.
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
