//! Handlers, one per resource. Query parameters are parsed by hand so every bad value gets a message
//! naming the parameter.

use std::collections::HashMap;

use alloy_primitives::{Address, U256};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gemgate_domain::reads::{EventPage, EventQuery};
use gemgate_projections::gemforce::tables::TRADE_DEALS;
use serde_json::Value;

use crate::dto::{
    ErrorBody, Health, Rows, SinkPaused, SinkReplayed, SinkRequeued, SinkState, Sinks, Status, TradeDeals,
    WebhookAccepted,
};
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

pub(crate) fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad("invalid_parameter", format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

pub(crate) fn limit(params: &HashMap<String, String>) -> Result<u32, ApiError> {
    match number(params, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => {
            Err(ApiError::bad("invalid_parameter", format!("limit must be between 1 and {MAX_LIMIT}")))
        }
    }
}

#[utoipa::path(get, path = "/health",
    tag = "service",
    responses((status = 200, description = "alive", body = Health)),
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The registry in the OpenMetrics text format (what the encoder writes; Prometheus scrapes it as such).
#[utoipa::path(get, path = "/metrics",
    tag = "service",
    responses(
        (
            status = 200,
            description = "OpenMetrics text",
            body = String,
            content_type = "application/openmetrics-text",
        ),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
}

#[utoipa::path(get, path = "/status",
    tag = "status",
    responses((status = 200, description = "progress of every chain and sink", body = Status)),
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let chains = state.store.reads.chain_status().await?;
    Ok(Json(Status { chains, sinks: sink_states(&state).await? }))
}

/// Each configured sink with its delivery state: position, backlog, dead letters, paused.
async fn sink_states(state: &AppState) -> Result<Vec<SinkState>, ApiError> {
    let names: Vec<String> = state.sinks.iter().map(|s| s.name.clone()).collect();
    let backlogs = state.store.delivery.sink_backlogs(&names).await?;
    Ok(state.sinks.iter().zip(backlogs).map(|(info, backlog)| SinkState::of(info, &backlog)).collect())
}

#[utoipa::path(get, path = "/sinks",
    tag = "delivery",
    responses(
        (
            status = 200,
            description = "each sink: kind, finality, position in the outbox, backlog, dead letters, paused",
            body = Sinks,
        ),
    ),
)]
pub async fn sinks(State(state): State<AppState>) -> Result<Json<Sinks>, ApiError> {
    Ok(Json(Sinks { sinks: sink_states(&state).await? }))
}

fn configured_sink(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.sinks.iter().any(|s| s.name == name) {
        Ok(())
    } else {
        Err(ApiError::NotFound { what: format!("sink {name:?}") })
    }
}

#[utoipa::path(post, path = "/sinks/{name}/pause",
    tag = "delivery",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "a configured sink")),
    responses(
        (status = 200, description = "paused; its backlog waits", body = SinkPaused),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
pub async fn pause_sink(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SinkPaused>, ApiError> {
    configured_sink(&state, &name)?;
    state.store.delivery.set_sink_paused(&name, true).await?;
    Ok(Json(SinkPaused { name, paused: true }))
}

#[utoipa::path(post, path = "/sinks/{name}/resume",
    tag = "delivery",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "a configured sink")),
    responses(
        (status = 200, description = "delivering again from where it stopped", body = SinkPaused),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
pub async fn resume_sink(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SinkPaused>, ApiError> {
    configured_sink(&state, &name)?;
    state.store.delivery.set_sink_paused(&name, false).await?;
    Ok(Json(SinkPaused { name, paused: false }))
}

#[utoipa::path(get, path = "/events", tag = "events",
    params(
        ("chain_id" = Option<u64>, Query),
        ("address" = Option<String>, Query, description = "0x followed by 40 hex digits"),
        ("event" = Option<String>, Query, description = "event name, e.g. TradeDealCreated"),
        ("from_block" = Option<u64>, Query),
        ("to_block" = Option<u64>, Query),
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "a page of events in chain order", body = EventPage),
        (status = 400, description = "invalid input", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<EventPage>, ApiError> {
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
    Ok(Json(state.store.reads.events(&query).await?))
}

#[utoipa::path(get, path = "/trade-deals",
    tag = "projections",
    params(
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "a page of trade deals", body = TradeDeals),
        (status = 400, description = "invalid input", body = ErrorBody),
    ),
)]
pub async fn trade_deals(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<TradeDeals>, ApiError> {
    let limit = limit(&params)?;
    let rows = state
        .store
        .reads
        .projection_rows(TRADE_DEALS.name, None, params.get("after").cloned(), limit)
        .await?
        .unwrap_or_default();
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().and_then(|r| r["key"].as_str()).map(String::from))
        .flatten();
    Ok(Json(TradeDeals { trade_deals: rows, next }))
}

/// A trade deal by its id (`tradeDealId`), looked up in each configured Gemforce contract; or by its full
/// key.
#[utoipa::path(get, path = "/trade-deals/{id}",
    tag = "projections",
    params(("id" = String, Path, description = "tradeDealId (decimal) or the full key")),
    responses(
        (status = 200, description = "the trade deal (a projection row)", body = Object),
        (status = 404, description = "no such trade deal", body = ErrorBody),
        (status = 400, description = "invalid input", body = ErrorBody),
    ),
)]
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
        let rows = state.store.reads.projection_rows(TRADE_DEALS.name, Some(key), None, 1).await?;
        if let Some(row) = rows.unwrap_or_default().pop() {
            return Ok(Json(row));
        }
    }
    Err(ApiError::NotFound { what: format!("trade deal {id}") })
}

/// Rows of a projection table, or 404 naming the tables kept.
async fn rows_of(
    state: &AppState,
    name: &str,
    key: Option<String>,
    after: Option<String>,
    limit: u32,
) -> Result<Vec<Value>, ApiError> {
    state.store.reads.projection_rows(name, key, after, limit).await?.ok_or_else(|| ApiError::NotFound {
        what: format!("projection {name} (known: {})", state.store.reads.projection_tables().join(", ")),
    })
}

#[utoipa::path(get, path = "/projections/{table}",
    tag = "projections",
    params(
        ("table" = String, Path),
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "a page of rows", body = Rows),
        (status = 404, description = "unknown table", body = ErrorBody),
        (status = 400, description = "invalid input", body = ErrorBody),
    ),
)]
pub async fn projection_rows(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Rows>, ApiError> {
    let limit = limit(&params)?;
    let rows = rows_of(&state, &name, None, params.get("after").cloned(), limit).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().and_then(|r| r["key"].as_str()).map(String::from))
        .flatten();
    Ok(Json(Rows { rows, next }))
}

#[utoipa::path(get, path = "/projections/{table}/{key}",
    tag = "projections",
    params(("table" = String, Path), ("key" = String, Path)),
    responses(
        (status = 200, description = "the row", body = Object),
        (status = 404, description = "no such table or row", body = ErrorBody),
    ),
)]
pub async fn projection_row(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    match rows_of(&state, &name, Some(key.clone()), None, 1).await?.pop() {
        Some(row) => Ok(Json(row)),
        None => Err(ApiError::NotFound { what: format!("{name} row {key}") }),
    }
}

/// `GET /v1/stream`: the outbox as server-sent events, for consumers without a broker. Each event's SSE
/// `id` is its outbox position, its SSE `event` the message status (`canonical` or `retracted`), its `data`
/// the envelope. A client resumes with `Last-Event-ID` (or `?after=N`); without either it starts at the
/// beginning of the outbox.
#[utoipa::path(get, path = "/stream", tag = "events",
    params(
        ("after" = Option<u64>, Query, description = "start after this outbox position (Last-Event-ID wins)"),
        ("Last-Event-ID" = Option<u64>, Header),
    ),
    responses(
        (
            status = 200,
            description = "the outbox as server-sent events: id = outbox position, \
                           event = canonical | retracted, data = the envelope",
            body = String,
            content_type = "text/event-stream",
        ),
        (status = 400, description = "invalid input", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use gemgate_domain::ports::OutboxEntry;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let after = match resume.or_else(|| params.get("after").cloned()) {
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad("invalid_parameter", "Last-Event-ID and after are outbox positions (integers)")
        })?,
        None => 0,
    };
    let store = state.store.outbox;
    let events = futures::stream::unfold(
        (store, after, std::collections::VecDeque::<gemgate_domain::OutboxMessage>::new()),
        |(store, mut after, mut buffered)| async move {
            loop {
                if let Some(message) = buffered.pop_front() {
                    let status = message.status.as_str();
                    let event = axum::response::sse::Event::default()
                        .id(message.seq.to_string())
                        .event(status)
                        .data(&*message.payload);
                    return Some((Ok(event), (store, after, buffered)));
                }
                match store.outbox_after(after, 500).await {
                    Ok(entries) if !entries.is_empty() => {
                        for entry in entries {
                            after = entry.seq();
                            if let OutboxEntry::Message(message) = entry {
                                buffered.push_back(message);
                            }
                        }
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                    Err(error) => {
                        tracing::warn!(%error, "stream: reading the outbox failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        },
    );
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// `POST /v1/webhooks/gemforce`: a Gemforce webhook. The `X-Gemforce-Signature` header (hex HMAC-SHA256 of
/// the raw body with `api.gemforce_webhook_secret`) is checked in constant time before anything else; a
/// bad one gets 401 and is counted. A verified payload is stored once (deduplicated by its `id` field, else
/// by the SHA-256 of the body) with an outbox row, so the sinks deliver it; the answer is 202 at once.
#[utoipa::path(post, path = "/v1/webhooks/gemforce", tag = "delivery",
    params(
        (
            "X-Gemforce-Signature" = String,
            Header,
            description = "hex HMAC-SHA256 of the raw body with api.gemforce_webhook_secret"
        ),
    ),
    request_body(content = Object, description = "the Gemforce webhook payload (JSON)"),
    responses(
        (status = 202, description = "stored once and queued for the sinks", body = WebhookAccepted),
        (status = 400, body = ErrorBody),
        (status = 401, description = "bad or missing signature", body = ErrorBody),
        (status = 404, description = "no webhook secret configured", body = ErrorBody),
    ))]
pub async fn gemforce_webhook(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<WebhookAccepted>), ApiError> {
    use sha2::Digest;
    let Some(secret) = &state.settings.gemforce_webhook_secret else {
        return Err(ApiError::NotFound {
            what: "webhook endpoint (api.gemforce_webhook_secret_env is not set)".into(),
        });
    };
    let signature = headers.get("x-gemforce-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !gemgate_domain::signature::verify_body(secret.expose().as_bytes(), signature, &body) {
        state.webhooks.rejected.inc();
        tracing::warn!("gemforce webhook refused: bad or missing X-Gemforce-Signature");
        return Err(ApiError::Unauthorized);
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad("invalid_body", "the webhook body is not JSON"))?;
    let id = match payload.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 200 => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => hex::encode(sha2::Sha256::digest(&body)),
    };
    let stored = state.store.delivery.store_inbound_webhook("gemforce", &id, &payload).await?;
    state.webhooks.accepted.inc();
    Ok((StatusCode::ACCEPTED, Json(WebhookAccepted { id, duplicate: !stored })))
}

/// `POST /v1/sinks/{name}/replay` with `{"from_block": N, "chain_id": ID?}` or `{"from_time": "RFC 3339"}`.
#[utoipa::path(post, path = "/sinks/{name}/replay",
    tag = "delivery",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "a configured sink")),
    request_body = ReplayBody,
    responses(
        (
            status = 200,
            description = "the sink delivers again after this outbox position",
            body = SinkReplayed,
        ),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
pub async fn replay_sink(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SinkReplayed>, ApiError> {
    use gemgate_domain::reads::ReplayFrom;
    configured_sink(&state, &name)?;
    let request: ReplayBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad("invalid_body", format!("send a JSON object with from_block or from_time: {e}"))
    })?;
    let from = match (request.from_block, request.from_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad("invalid_body", "give from_block or from_time, not both"));
        }
        (Some(block), None) => ReplayFrom::Block { chain_id: request.chain_id, block },
        (None, Some(text)) => {
            let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|_| {
                ApiError::bad(
                    "invalid_body",
                    "from_time must be an RFC 3339 UTC time such as 2026-11-26T14:00:00Z",
                )
            })?;
            ReplayFrom::Time(humantime::format_rfc3339_millis(time).to_string())
        }
        (None, None) => {
            return Err(ApiError::bad("invalid_body", "send a JSON object with from_block or from_time"));
        }
    };
    let position = state.store.delivery.position_before(from).await?;
    state.store.delivery.rewind_sink(&name, position).await?;
    Ok(Json(SinkReplayed { name, position }))
}

/// `POST /v1/sinks/{name}/replay`: from a block (of every chain, or of `chain_id`) or from a time.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ReplayBody {
    from_block: Option<u64>,
    chain_id: Option<u64>,
    /// RFC 3339 (UTC), e.g. 2026-11-26T14:00:00Z.
    from_time: Option<String>,
}

/// `POST /v1/sinks/{name}/requeue`: the sink's dead letters are sent again.
#[utoipa::path(post, path = "/sinks/{name}/requeue",
    tag = "delivery",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "a configured sink")),
    responses(
        (status = 200, description = "how many dead letters were requeued", body = SinkRequeued),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
pub async fn requeue_sink(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SinkRequeued>, ApiError> {
    configured_sink(&state, &name)?;
    let requeued = state.store.delivery.requeue_dead_letters(&name).await?;
    Ok(Json(SinkRequeued { name, requeued }))
}
