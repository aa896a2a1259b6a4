//! Data sync beyond events: `GET /v1/drift` (what reconciliation found: projection values a contract's own
//! view contradicted, and whether they were healed) and `GET /v1/snapshots` (contract-state snapshot runs).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::ErrorBody;
use crate::handlers::{limit, number};
use crate::{ApiError, AppState};

/// `GET /v1/drift`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftPage {
    /// Each: `id`, `chain_id`, `table`, `key`, `column`, `projected`, `on_chain`, `block_number`,
    /// `block_hash`, `healed`, `detected_at`.
    #[schema(value_type = Vec<Object>)]
    pub drift: Vec<Value>,
    /// Pass as `before` for the next (older) page.
    pub next: Option<u64>,
}

#[utoipa::path(get, path = "/drift",
    tag = "sync",
    params(
        ("before" = Option<u64>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "recorded drift, newest first", body = DriftPage),
        (status = 400, description = "invalid input", body = ErrorBody),
    ),
)]
pub async fn drift(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<DriftPage>, ApiError> {
    let limit = limit(&params)?;
    let before = number(&params, "before")?;
    let records = state.store.drift.drift(before, limit).await?;
    let next = (records.len() == limit as usize).then(|| records.last().map(|r| r.id)).flatten();
    let drift = records.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
    Ok(Json(DriftPage { drift, next }))
}

/// `GET /v1/snapshots`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotRuns {
    /// Each: `id`, `name`, `table`, `chain_id`, `block_number`, `block_hash`, `state` (running, complete or
    /// abandoned), `rows`, `calls`, `batches`, `duration_ms`, `error`, `started_at`, `finished_at`.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<Value>,
}

#[utoipa::path(get, path = "/snapshots",
    tag = "sync",
    params(
        ("name" = Option<String>, Query, description = "one snapshot's runs"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "contract-state snapshot runs, newest first", body = SnapshotRuns),
        (status = 400, description = "invalid input", body = ErrorBody),
    ),
)]
pub async fn snapshots(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<SnapshotRuns>, ApiError> {
    let limit = limit(&params)?;
    let runs = state.store.states.state_runs(params.get("name").map(String::as_str), limit).await?;
    Ok(Json(SnapshotRuns {
        runs: runs.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect(),
    }))
}
