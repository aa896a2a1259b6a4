//! Handlers, one per resource. Query parameters are parsed by hand so every bad value gets a message
//! naming the parameter.

use std::collections::HashMap;

use alloy_primitives::{Address, U256};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gemgate_projections::gemforce::tables::TRADE_DEALS;
use gemgate_store::read::EventQuery;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad("invalid_parameter", format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

fn limit(params: &HashMap<String, String>) -> Result<u32, ApiError> {
    match number(params, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => {
            Err(ApiError::bad("invalid_parameter", format!("limit must be between 1 and {MAX_LIMIT}")))
        }
    }
}

pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.heads().await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.encode())
}

pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let chains = state.store.chain_status().await?;
    Ok(Json(json!({"chains": chains, "sinks": []})))
}

pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let known = ["chain_id", "address", "event", "from_block", "to_block", "after", "limit"];
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(
            "invalid_parameter",
            format!("unknown parameter {unknown}; known: {}", known.join(", ")),
        ));
    }
    let address = params
        .get("address")
        .map(|a| {
            a.parse::<Address>().map_err(|_| {
                ApiError::bad("invalid_parameter", "address must be 0x followed by 40 hex digits")
            })
        })
        .transpose()?;
    let after = params
        .get("after")
        .map(|a| {
            let parts: Vec<Option<u64>> = a.split(':').map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [Some(c), Some(b), Some(l)] => Ok((*c, *b, *l)),
                _ => Err(ApiError::bad(
                    "invalid_parameter",
                    "after must be the `next` value of a previous page",
                )),
            }
        })
        .transpose()?;
    let query = EventQuery {
        chain_id: number(&params, "chain_id")?,
        address,
        event: params.get("event").cloned(),
        from_block: number(&params, "from_block")?,
        to_block: number(&params, "to_block")?,
        after,
        limit: limit(&params)?,
    };
    if let (Some(from), Some(to)) = (query.from_block, query.to_block)
        && from > to
    {
        return Err(ApiError::bad("invalid_parameter", "from_block must not be above to_block"));
    }
    let page = state.store.events(&query).await?;
    Ok(Json(json!({"events": page.events, "next": page.next})))
}

pub async fn trade_deals(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&params)?;
    let rows = state.store.projection_rows(&TRADE_DEALS, None, params.get("after").cloned(), limit).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().and_then(|r| r["key"].as_str()).map(String::from))
        .flatten();
    Ok(Json(json!({"trade_deals": rows, "next": next})))
}

/// A trade deal by its id (`tradeDealId`), looked up in each configured Gemforce contract; or by its full key.
pub async fn trade_deal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let keys: Vec<String> = if id.contains(':') {
        vec![id.clone()]
    } else {
        let number: U256 = id
            .parse()
            .map_err(|_| ApiError::bad("invalid_parameter", "the trade deal id must be a decimal number"))?;
        state
            .gemforce
            .iter()
            .map(|c| format!("{}:{}:{number}", c.chain_id, c.address.to_checksum(None)))
            .collect()
    };
    for key in keys {
        if let Some(row) = state.store.projection_rows(&TRADE_DEALS, Some(key), None, 1).await?.pop() {
            return Ok(Json(row));
        }
    }
    Err(ApiError::NotFound { what: format!("trade deal {id}") })
}

fn table(state: &AppState, name: &str) -> Result<&'static gemgate_projections::TableDef, ApiError> {
    state.store.projections().table(name).ok_or_else(|| {
        let names: Vec<&str> = state.store.projections().tables().iter().map(|t| t.name).collect();
        ApiError::NotFound { what: format!("projection {name} (known: {})", names.join(", ")) }
    })
}

pub async fn projection_rows(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let table = table(&state, &name)?;
    let limit = limit(&params)?;
    let rows = state.store.projection_rows(table, None, params.get("after").cloned(), limit).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().and_then(|r| r["key"].as_str()).map(String::from))
        .flatten();
    Ok(Json(json!({"rows": rows, "next": next})))
}

pub async fn projection_row(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let table = table(&state, &name)?;
    match state.store.projection_rows(table, Some(key.clone()), None, 1).await?.pop() {
        Some(row) => Ok(Json(row)),
        None => Err(ApiError::NotFound { what: format!("{name} row {key}") }),
    }
}
