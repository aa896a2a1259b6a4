//! The audit log: every write through the API (any method but GET, HEAD and OPTIONS on the write groups)
//! is recorded after it was answered, with its caller, method, path and status; `GET /v1/audit` (admin)
//! lists the log. A failure to record is logged and counted, and does not change the answer.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gemgate_domain::ports::AuditEntry;
use std::collections::HashMap;

use crate::auth::Caller;
use crate::dto::ErrorBody;
use crate::{ApiError, AppState};

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS) {
        return next.run(request).await;
    }
    let caller = request.extensions().get::<Caller>().map(|c| c.name.clone()).unwrap_or_default();
    // Under `/v1` the router sees the nested path: the original one is what the client sent.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path().to_string(), |uri| uri.path().to_string());
    let response = next.run(request).await;
    let entry = AuditEntry {
        id: 0,
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        caller,
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    };
    if let Err(error) = state.store.audit.record(&entry).await {
        tracing::error!(%error, method = %entry.method, path = %entry.path, "cannot record the audit entry");
        state.http.audit_failures.inc();
    }
    response
}

/// A page of the audit log, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page.
    pub next: Option<u64>,
}

/// The audit log of API writes, newest first (admin).
#[utoipa::path(get, path = "/audit", tag = "operations",
    params(
        ("before" = Option<u64>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn audit(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = crate::handlers::limit(&params)?;
    let before = crate::handlers::number(&params, "before")?;
    let entries = state.store.audit.audit_entries(before, limit).await?;
    let next = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(AuditPage { entries, next }))
}
