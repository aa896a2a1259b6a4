//! `POST /v1/call`: view calls through the proxy (`gemgate-calls`), one object or an array of them. Each is
//! checked here (addresses, hex, the function and its arguments against the configured ABIs, the block)
//! before anything reaches the node. A single call that reverts answers 422 with the decoded reason; in a
//! batch, each member carries its own `error`.

use alloy_primitives::Address;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gemgate_calls::{CallError, CallInput, CallResult, Catalog, Prepared};
use gemgate_domain::ChainId;
use gemgate_domain::calls::BlockSelector;
use serde::Deserialize;
use serde_json::Value;

use crate::dto::{CallAnswerBody, CallResults, ErrorBody};
use crate::{ApiError, AppState};

/// One view call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    chain_id: ChainId,
    /// A `0x` address or a configured contract's name.
    to: String,
    /// `msg.sender` of the call. Without it the sender is not specified (the call may go through
    /// Multicall3 with others): give it when the function reads `msg.sender`.
    from: Option<String>,
    /// Calldata, `0x` hex (or `function` with `args`).
    data: Option<String>,
    /// A function name from the contract's configured ABI (`carbonCreditBalance`) or a signature
    /// (`balanceOf(address)`, optionally `returns (uint256)` to decode the result).
    #[schema(example = "carbonCreditBalance")]
    function: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    args: Vec<Value>,
    /// `latest` (default), `safe`, `finalized`, a block number, or a block hash.
    #[schema(value_type = Option<String>, example = "latest")]
    block: Option<Value>,
}

/// One call, or an array of calls answered together. (For the document: the handler parses the body
/// itself, so an error names the member and field that is wrong.)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum CallRequestBody {
    One(CallBody),
    Many(Vec<CallBody>),
}

fn block(value: &Option<Value>) -> Result<Option<BlockSelector>, ApiError> {
    let bad = |shown: String| {
        ApiError::bad(
            "invalid_parameter",
            format!("block: {shown} is not latest, safe, finalized, a block number or a 32-byte block hash"),
        )
    };
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().map(|n| Some(BlockSelector::Number(n))).ok_or_else(|| bad(n.to_string()))
        }
        Some(Value::String(text)) => {
            BlockSelector::parse(text).map(Some).ok_or_else(|| bad(format!("{text:?}")))
        }
        Some(other) => Err(bad(other.to_string())),
    }
}

fn prepare(catalog: &Catalog, body: &CallBody, at: &str) -> Result<Prepared, ApiError> {
    let field = |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}.{name}") };
    let from = body
        .from
        .as_deref()
        .map(|text| {
            text.parse::<Address>().map_err(|_| {
                ApiError::bad(
                    "invalid_parameter",
                    format!("{}: {text:?} is not a 20-byte hex address", field("from")),
                )
            })
        })
        .transpose()?;
    let data =
        body.data.as_deref().map(|text| crate::transactions::hex_bytes(text, &field("data"))).transpose()?;
    let input = CallInput {
        chain_id: body.chain_id,
        to: &body.to,
        from,
        data,
        function: body.function.as_deref(),
        args: &body.args,
        block: block(&body.block).map_err(|e| prefixed(e, at))?,
    };
    catalog.prepare(&input).map_err(|e| {
        ApiError::bad("invalid_parameter", if at.is_empty() { e.0 } else { format!("{at}.{}", e.0) })
    })
}

fn prefixed(error: ApiError, at: &str) -> ApiError {
    match error {
        ApiError::BadRequest { code, message } if !at.is_empty() => {
            ApiError::BadRequest { code, message: format!("{at}.{message}") }
        }
        other => other,
    }
}

fn call_error(error: CallError) -> ApiError {
    match error {
        CallError::UnknownChain(_) => ApiError::bad("invalid_parameter", format!("chain_id: {error}")),
        CallError::TooMany { .. } => ApiError::bad("too_many_calls", error.to_string()),
        CallError::NoSuchBlock { chain_id, block } => {
            ApiError::NotFound { what: format!("block {block} on chain {chain_id}") }
        }
        CallError::Chain(e) => ApiError::Unavailable { message: e.to_string() },
    }
}

/// `POST /v1/call`
#[utoipa::path(post, path = "/call", tag = "calls",
    request_body(content = CallRequestBody, description = "one call, or an array of up to calls.max_batch calls"),
    responses(
        (status = 200, description = "one call's result, or {\"results\": [...]} for an array (each member with its own error)", body = CallAnswerBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such block", body = ErrorBody),
        (status = 422, description = "the call reverted: `error.code` is call_reverted and `revert` says why", body = CallResult),
        (status = 503, description = "the chain is unavailable", body = ErrorBody),
    ))]
pub async fn call(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let Some(calls) = &state.calls else {
        return Err(ApiError::NotFound { what: "view-call proxy (configure [[chains]])".into() });
    };
    let (proxy, catalog) = (&calls.proxy, &calls.catalog);
    let value: Value = crate::transactions::parse_body(&body)?;
    let parse = |value: Value| -> Result<CallBody, ApiError> {
        serde_json::from_value(value)
            .map_err(|e| ApiError::bad("invalid_body", format!("the body is not valid: {e}")))
    };
    match value {
        Value::Array(items) => {
            let max = proxy.options().max_batch;
            if items.len() > max {
                return Err(ApiError::bad(
                    "too_many_calls",
                    format!("a batch holds at most {max} calls; {} given", items.len()),
                ));
            }
            if items.is_empty() {
                return Err(ApiError::bad("invalid_body", "an empty array: send at least one call"));
            }
            let mut prepared = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let body = parse(item).map_err(|e| prefixed(e, &format!("[{i}]")))?;
                prepared.push(prepare(catalog, &body, &format!("[{i}]"))?);
            }
            let calls: Vec<_> = prepared.iter().map(|p| p.call.clone()).collect();
            let answers = proxy.call_many(&calls).await.map_err(call_error)?;
            let results = prepared
                .iter()
                .zip(answers)
                .map(|(p, answer)| match answer {
                    Ok(answer) => catalog.explain(p, &answer),
                    Err(error) => {
                        if let CallError::Chain(e) = &error {
                            tracing::warn!(error = %e, "a batched view call failed: chain unavailable");
                        }
                        CallResult::failed(p, &error)
                    }
                })
                .collect();
            Ok((StatusCode::OK, Json(CallResults { results })).into_response())
        }
        value @ Value::Object(_) => {
            let body = parse(value)?;
            let prepared = prepare(catalog, &body, "")?;
            let answer = proxy.call(&prepared.call).await.map_err(call_error)?;
            let result = catalog.explain(&prepared, &answer);
            let status =
                if result.revert.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            Ok((status, Json(result)).into_response())
        }
        _ => Err(ApiError::bad("invalid_body", "send a call object or an array of call objects")),
    }
}
