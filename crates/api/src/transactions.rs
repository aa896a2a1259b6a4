//! `/v1/transactions`: requests to send (signed by a configured signer), client-signed transactions to
//! broadcast, their state, cancel and speed-up. Every input is checked here, before the manager sees it;
//! refusals say what is wrong. Writes need a key with the `transact` scope.

use std::collections::HashMap;

use alloy::json_abi::Function;
use alloy_primitives::{Address, Bytes, U256};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gemgate_domain::ledger::TxListQuery;
use gemgate_domain::{ChainId, TxState};
use gemgate_txm::fees::Speed;
use gemgate_txm::view::AttemptView;
use gemgate_txm::{Submit, SubmitError, Submitted, TxManager};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;

use crate::dto::{ErrorBody, RelayedView, Transaction, Transactions};
use crate::{ApiError, AppState};

/// Calldata larger than this is refused (geth's pool refuses transactions over 128 KiB).
const MAX_DATA_BYTES: usize = 128 * 1024;
const MAX_KEY_LEN: usize = 200;

/// `POST /v1/transactions`: a call or transfer from a configured signer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionBody {
    /// A configured signer's name.
    signer: String,
    chain_id: ChainId,
    /// `0x` address; absent for a contract creation.
    to: Option<String>,
    /// Wei, decimal.
    #[serde(default)]
    value: Option<String>,
    /// Calldata, `0x` hex (or `function` with `args`).
    data: Option<String>,
    /// A function signature such as `transfer(address,uint256)`, with `args`: encoded here.
    #[schema(example = "transfer(address,uint256)")]
    function: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    args: Vec<Value>,
    /// Gas limit (21000 to 100000000); estimated with a buffer when absent.
    gas: Option<u64>,
    /// `slow`, `normal` (default) or `fast`.
    speed: Option<String>,
    /// RFC 3339: the request expires (its nonce filled with a no-op) if not included by then.
    valid_until: Option<String>,
}

/// `POST /v1/transactions/raw`: a client-signed transaction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBody {
    /// Signed EIP-2718 bytes, `0x` hex.
    raw: String,
}

fn manager(state: &AppState) -> Result<&TxManager, ApiError> {
    state.txm.as_deref().ok_or_else(|| ApiError::NotFound {
        what: "transaction manager (configure [[chains]] and [[signers]])".into(),
    })
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("invalid_body", format!("the body is not valid: {e}")))
}

fn address(text: &str, field: &str) -> Result<Address, ApiError> {
    text.parse::<Address>().map_err(|_| {
        ApiError::bad("invalid_parameter", format!("{field}: {text:?} is not a 20-byte hex address"))
    })
}

pub(crate) fn hex_bytes(text: &str, field: &str) -> Result<Bytes, ApiError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| ApiError::bad("invalid_parameter", format!("{field}: hex must start with 0x")))?;
    if digits.len() / 2 > MAX_DATA_BYTES {
        return Err(ApiError::bad("invalid_parameter", format!("{field}: more than {MAX_DATA_BYTES} bytes")));
    }
    hex::decode(digits).map(Bytes::from).map_err(|_| {
        ApiError::bad(
            "invalid_parameter",
            format!("{field}: not valid hex (an even number of 0-9a-f digits)"),
        )
    })
}

/// Calldata from `function` and `args` (each argument a JSON string, number, bool or array).
fn encode_call(signature: &str, args: &[Value]) -> Result<Bytes, ApiError> {
    let function = Function::parse(signature).map_err(|e| {
        ApiError::bad(
            "invalid_parameter",
            format!("function: {signature:?} is not a signature such as \"transfer(address,uint256)\": {e}"),
        )
    })?;
    gemgate_calls::abi::encode(&function, args).map_err(|e| ApiError::bad("invalid_parameter", e.0))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad("invalid_header", "Idempotency-Key must be printable ASCII"))?
        .trim()
        .to_string();
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ApiError::bad(
            "invalid_header",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"),
        ));
    }
    Ok(Some(key))
}

pub(crate) fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::UnknownSigner(_)
        | SubmitError::UnknownChain(_)
        | SubmitError::SignerNotOnChain { .. } => ApiError::bad("invalid_parameter", error.to_string()),
        SubmitError::Conflict(_) => ApiError::Conflict { message: error.to_string() },
        SubmitError::Reverts(_)
        | SubmitError::Refused(_)
        | SubmitError::InsufficientFunds { .. }
        | SubmitError::AboveFeeCap { .. }
        | SubmitError::Invalid(_) => ApiError::Unprocessable { code: "refused", message: error.to_string() },
        SubmitError::Chain(e) => ApiError::Unavailable { message: e.to_string() },
        SubmitError::Store(e) => e.into(),
    }
}

fn accepted(submitted: &Submitted) -> Response {
    let status = match submitted {
        Submitted::New(_) => StatusCode::ACCEPTED,
        Submitted::Existing(_) => StatusCode::OK,
    };
    respond(status, &Transaction::of(submitted.record()))
}

/// A typed body, serialized before the handler returns (the views borrow the records it owns).
pub(crate) fn respond(status: StatusCode, body: &impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// `POST /v1/transactions`
#[utoipa::path(post, path = "/transactions", tag = "transactions", security(("bearer" = [])),
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "1 to 200 characters: the same key and body answer with the original request"
    )),
    request_body = TransactionBody,
    responses(
        (status = 202, description = "accepted with its nonce", body = Transaction),
        (status = 200, description = "the original request for this idempotency key", body = Transaction),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the idempotency key was used with another body", body = ErrorBody),
        (status = 422, description = "refused: reverts, cannot be paid, above the fee cap", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let manager = manager(&state)?;
    let key = idempotency_key(&headers)?;
    let request: TransactionBody = parse_body(&body)?;
    let to = request.to.as_deref().map(|t| address(t, "to")).transpose()?;
    let value = match request.value.as_deref() {
        None => U256::ZERO,
        Some(text) => U256::from_str_radix(text, 10).map_err(|_| {
            ApiError::bad("invalid_parameter", format!("value: {text:?} is not a decimal amount of wei"))
        })?,
    };
    let data = match (&request.data, &request.function) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad("invalid_parameter", "give data or function, not both"));
        }
        (Some(data), None) => hex_bytes(data, "data")?,
        (None, Some(function)) => encode_call(function, &request.args)?,
        (None, None) => Bytes::new(),
    };
    if to.is_none() && data.is_empty() {
        return Err(ApiError::bad(
            "invalid_parameter",
            "to: required (a transaction without to deploys its data, which is empty)",
        ));
    }
    let speed = match request.speed.as_deref() {
        None => Speed::Normal,
        Some(text) => Speed::parse(text).ok_or_else(|| {
            ApiError::bad("invalid_parameter", format!("speed: {text:?} is not slow, normal or fast"))
        })?,
    };
    if let Some(gas) = request.gas
        && !(21_000..=100_000_000).contains(&gas)
    {
        return Err(ApiError::bad("invalid_parameter", "gas: must be between 21000 and 100000000"));
    }
    let valid_until = match &request.valid_until {
        None => None,
        Some(text) => {
            let at = humantime::parse_rfc3339(text).map_err(|_| {
                ApiError::bad(
                    "invalid_parameter",
                    format!("valid_until: {text:?} is not an RFC 3339 time such as 2026-11-26T14:00:00Z"),
                )
            })?;
            let ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            if at <= std::time::SystemTime::now() {
                return Err(ApiError::bad("invalid_parameter", "valid_until: already passed"));
            }
            Some((text.clone(), ms))
        }
    };
    let submit = Submit {
        idempotency_key: key,
        body_sha256: hex::encode(sha2::Sha256::digest(&body)),
        signer: request.signer,
        chain_id: request.chain_id,
        to,
        value,
        data,
        gas_limit: request.gas,
        speed,
        valid_until,
        relayed: Vec::new(),
    };
    manager.submit(submit).await.map(|s| accepted(&s)).map_err(submit_error)
}

/// `POST /v1/transactions/raw`: `{"raw": "0x..."}`, a signed transaction to broadcast and track.
#[utoipa::path(post, path = "/transactions/raw", tag = "transactions", security(("bearer" = [])),
    request_body = RawBody,
    responses(
        (status = 202, description = "tracked: broadcast and followed to finality", body = Transaction),
        (status = 200, description = "the same bytes were submitted before", body = Transaction),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create_raw(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let manager = manager(&state)?;
    let request: RawBody = parse_body(&body)?;
    let raw = hex_bytes(&request.raw, "raw")?;
    manager.submit_raw(&raw).await.map(|s| accepted(&s)).map_err(submit_error)
}

/// `GET /v1/transactions/{id}`: the request, its attempts, and confirmations once included.
#[utoipa::path(get, path = "/transactions/{id}", tag = "transactions",
    params(("id" = String, Path, description = "<chain id>-<sender>-<nonce>")),
    responses(
        (status = 200, description = "state, attempts, receipt, confirmations", body = Transaction),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let manager = manager(&state)?;
    let record = manager
        .store
        .transaction(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound { what: format!("transaction {id}") })?;
    let attempts = manager.store.attempts(&id).await?;
    let relayed = if record.origin == "relay" { manager.store.relayed(&id).await? } else { Vec::new() };
    let mut body = Transaction::of(&record);
    body.attempts = Some(attempts.iter().map(AttemptView::of).collect());
    if record.origin == "relay" {
        body.relayed = Some(relayed.iter().map(RelayedView::of).collect());
    }
    if let (Some(number), Ok(rpc)) = (record.block_number, manager.chain(record.chain_id))
        && let Ok(Some((head, _))) = rpc.head(gemgate_domain::FinalityLevel::Latest).await
    {
        body.confirmations = Some(head.saturating_sub(number) + 1);
    }
    Ok(respond(StatusCode::OK, &body))
}

/// `GET /v1/transactions`: requests newest first; filters `signer`, `chain_id`, `state`, `from_time`
/// (RFC 3339); cursor pagination with `after` (the previous page's `next`) and `limit`.
#[utoipa::path(get, path = "/transactions", tag = "transactions",
    params(
        ("signer" = Option<String>, Query, description = "a configured signer's name"),
        ("chain_id" = Option<u64>, Query),
        ("state" = Option<TxState>, Query),
        ("from_time" = Option<String>, Query, description = "created at or after (RFC 3339, UTC)"),
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "requests newest first, each with created_at", body = Transactions),
        (status = 400, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const KNOWN: [&str; 6] = ["signer", "chain_id", "state", "from_time", "after", "limit"];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad(
            "invalid_parameter",
            format!("unknown parameter {unknown:?}: expected one of {}", KNOWN.join(", ")),
        ));
    }
    let state_filter = params
        .get("state")
        .map(|text| {
            TxState::parse(text).ok_or_else(|| {
                ApiError::bad(
                    "invalid_parameter",
                    format!("state: {text:?} is not one of {}", TxState::ALL.map(|s| s.as_str()).join(", ")),
                )
            })
        })
        .transpose()?;
    let from_time = params
        .get("from_time")
        .map(|text| {
            humantime::parse_rfc3339_weak(text)
                .map(|t| humantime::format_rfc3339_millis(t).to_string())
                .map_err(|_| {
                    ApiError::bad(
                        "invalid_parameter",
                        format!("from_time: {text:?} is not an RFC 3339 time such as 2026-12-02T10:00:00Z"),
                    )
                })
        })
        .transpose()?;
    let before = params.get("after").map(|cursor| decode_cursor(cursor)).transpose()?;
    let query = TxListQuery {
        signer: params.get("signer").cloned(),
        chain_id: crate::handlers::number(&params, "chain_id")?,
        state: state_filter,
        from_time,
        before,
        limit: crate::handlers::limit(&params)?,
    };
    let page = state.store.ledger.list(&query).await?;
    let transactions = page
        .items
        .iter()
        .map(|(record, created_at)| Transaction { created_at: Some(created_at), ..Transaction::of(record) })
        .collect();
    let next = page.next.map(|(created, id)| encode_cursor(&created, &id));
    Ok(respond(StatusCode::OK, &Transactions { transactions, next }))
}

/// The list cursor: the last item's creation time and id, hex-encoded so clients treat it as opaque.
fn encode_cursor(created_at: &str, id: &str) -> String {
    hex::encode(format!("{created_at}|{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad("invalid_parameter", "after: not a cursor from a previous page's next");
    let text = hex::decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (created, id) = text.split_once('|').ok_or_else(bad)?;
    humantime::parse_rfc3339_weak(created).map_err(|_| bad())?;
    Ok((created.to_string(), id.to_string()))
}

/// `POST /v1/transactions/{id}/cancel`
#[utoipa::path(post, path = "/transactions/{id}/cancel", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "<chain id>-<sender>-<nonce>")),
    responses(
        (status = 200, description = "cancel requested: a zero-value self-transfer at the nonce", body = Transaction),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "too late to cancel", body = ErrorBody),
    ))]
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let manager = manager(&state)?;
    let record =
        manager.cancel(&id).await?.ok_or_else(|| ApiError::NotFound { what: format!("transaction {id}") })?;
    if record.ending != Some(gemgate_domain::TxState::Cancelled) {
        return Err(ApiError::Conflict {
            message: format!("transaction {id} is {:?} and can no longer be cancelled", record.state),
        });
    }
    Ok(respond(StatusCode::OK, &Transaction::of(&record)))
}

/// `POST /v1/transactions/{id}/speed-up`
#[utoipa::path(post, path = "/transactions/{id}/speed-up", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "<chain id>-<sender>-<nonce>")),
    responses(
        (status = 200, description = "re-pricing requested", body = Transaction),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "nothing to speed up", body = ErrorBody),
    ))]
pub async fn speed_up(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let manager = manager(&state)?;
    let record = manager
        .speed_up(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound { what: format!("transaction {id}") })?;
    if !matches!(record.state, gemgate_domain::TxState::Signed | gemgate_domain::TxState::Submitted)
        || record.origin == "raw"
    {
        return Err(ApiError::Conflict {
            message: format!("transaction {id} is {:?}: nothing to speed up", record.state),
        });
    }
    Ok(respond(StatusCode::OK, &Transaction::of(&record)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn calls_are_encoded_from_a_signature_and_json_arguments() {
        let data = encode_call(
            "transfer(address,uint256)",
            &[json!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"), json!("5")],
        )
        .unwrap();
        assert_eq!(&data[..4], &[0xa9, 0x05, 0x9c, 0xbb], "transfer's selector");
        assert_eq!(data.len(), 4 + 64);
        assert!(encode_call("transfer(address,uint256)", &[json!("0x12")]).is_err(), "argument count");
        assert!(
            encode_call("transfer(address,uint256)", &[json!("nope"), json!("1")]).is_err(),
            "bad address"
        );
        assert!(encode_call("not a signature", &[]).is_err());
    }

    #[test]
    fn hex_input_is_checked() {
        assert!(hex_bytes("0x", "data").unwrap().is_empty());
        assert!(hex_bytes("12", "data").is_err(), "0x required");
        assert!(hex_bytes("0x123", "data").is_err(), "odd length");
        assert!(hex_bytes(&format!("0x{}", "00".repeat(MAX_DATA_BYTES + 1)), "data").is_err(), "too large");
    }
}
