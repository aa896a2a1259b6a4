//! `POST /v1/relay`: a user's signed ERC-2771 `ForwardRequest`, relayed by a `[[relayers]]` entry's signer.
//! The shape is checked here (addresses, hex, numbers); the relayer (`gemgate-relay`) checks the rest before
//! anything is signed or spent, and each refusal has its own stable code. Needs a key with the `relay` scope.

use alloy_primitives::aliases::U48;
use alloy_primitives::{Address, U256};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gemgate_domain::ChainId;
use gemgate_relay::{ForwardRequest, ForwarderDomain, RelayError, RelayInput, Relayer, SignedRequest};
use gemgate_txm::Submitted;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::KeyName;
use crate::dto::{ErrorBody, RelayedView, Transaction};
use crate::transactions::{hex_bytes, parse_body, respond, submit_error};
use crate::{ApiError, AppState};

/// `POST /v1/relay`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayBody {
    /// A `[[relayers]]` name; may be left out when one relayer serves `chain_id`.
    relayer: Option<String>,
    chain_id: ChainId,
    request: ForwardRequestBody,
    /// The user's EIP-712 signature of `request`: 65 bytes `r || s || v`, `0x` hex.
    signature: String,
    /// The EIP-712 domain the user signed under (as given to `eth_signTypedData_v4`); checked against
    /// the forwarder's `eip712Domain()`, so a request signed for another chain or forwarder is named as such.
    domain: Option<DomainBody>,
}

/// The `ForwardRequest` the user signed (OpenZeppelin's `ERC2771Forwarder`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequestBody {
    /// The user: the signer, and `_msgSender()` in the target.
    from: String,
    /// The target contract (it must trust the forwarder).
    to: String,
    /// Wei, decimal; the relayer pays it (at most `relayers.max_value_wei`, default 0). Default 0.
    value: Option<String>,
    /// Gas for the call to the target (a number or a decimal string).
    #[schema(value_type = u64)]
    gas: Value,
    /// The forwarder's nonce for `from` (`nonces(from)`), a number or a decimal string.
    #[schema(value_type = u64)]
    nonce: Value,
    /// Unix seconds after which the request is void.
    deadline: u64,
    /// The call, `0x` hex.
    data: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainBody {
    name: String,
    version: String,
    #[serde(alias = "chainId")]
    chain_id: u64,
    #[serde(alias = "verifyingContract")]
    verifying_contract: String,
}

fn relayer(state: &AppState) -> Result<&Relayer, ApiError> {
    state
        .relay
        .as_deref()
        .ok_or_else(|| ApiError::NotFound { what: "relayer (configure [[relayers]])".into() })
}

fn address(text: &str, field: &str) -> Result<Address, ApiError> {
    let shaped = text.len() == 42 && text.starts_with("0x");
    text.parse::<Address>().ok().filter(|_| shaped).ok_or_else(|| {
        ApiError::bad("invalid_parameter", format!("{field}: {text:?} is not a 20-byte 0x address"))
    })
}

fn number(value: &Value, field: &str) -> Result<U256, ApiError> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().map(U256::from),
        Value::String(text) => U256::from_str_radix(text, 10).ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError::bad("invalid_parameter", format!("{field}: {value} is not a non-negative integer"))
    })
}

fn input(body: RelayBody) -> Result<RelayInput, ApiError> {
    let r = &body.request;
    let value = match &r.value {
        None => U256::ZERO,
        Some(text) => number(&Value::String(text.clone()), "request.value")?,
    };
    let deadline = U48::try_from(r.deadline)
        .map_err(|_| ApiError::bad("invalid_parameter", "request.deadline: more than 48 bits"))?;
    let request = ForwardRequest {
        from: address(&r.from, "request.from")?,
        to: address(&r.to, "request.to")?,
        value,
        gas: number(&r.gas, "request.gas")?,
        nonce: number(&r.nonce, "request.nonce")?,
        deadline,
        data: hex_bytes(&r.data, "request.data")?,
    };
    let domain = match &body.domain {
        None => None,
        Some(d) => Some(ForwarderDomain {
            name: d.name.clone(),
            version: d.version.clone(),
            chain_id: d.chain_id,
            verifying_contract: address(&d.verifying_contract, "domain.verifying_contract")?,
        }),
    };
    Ok(RelayInput {
        relayer: body.relayer,
        chain_id: body.chain_id,
        request: SignedRequest { request, signature: hex_bytes(&body.signature, "signature")? },
        domain,
    })
}

fn relay_error(error: RelayError) -> ApiError {
    let code = error.code();
    match error {
        RelayError::UnknownRelayer(_) | RelayError::Invalid(_) => ApiError::bad(code, error.to_string()),
        RelayError::QuotaExceeded { retry_after, .. } => ApiError::Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code,
            message: error.to_string(),
            retry_after: Some(retry_after),
        },
        RelayError::GasPriceTooHigh { .. } => ApiError::Refused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: error.to_string(),
            retry_after: Some(15),
        },
        RelayError::NoncePending { .. } => ApiError::Refused {
            status: StatusCode::CONFLICT,
            code,
            message: error.to_string(),
            retry_after: None,
        },
        RelayError::Submit(e) => submit_error(e),
        RelayError::Unavailable(message) => ApiError::Unavailable { message },
        RelayError::Chain(e) => ApiError::Unavailable { message: e.to_string() },
        RelayError::Store(e) => e.into(),
        other => ApiError::Unprocessable { code, message: other.to_string() },
    }
}

/// `POST /v1/relay`
#[utoipa::path(post, path = "/relay", tag = "transactions", security(("bearer" = [])),
    request_body = RelayBody,
    responses(
        (status = 202, description = "accepted: relayed in a transaction followed to finality", body = Transaction),
        (status = 200, description = "this signed request was relayed before: its transaction", body = Transaction),
        (status = 400, description = "malformed, or unknown_relayer", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "nonce_pending: another request with this forwarder nonce is being relayed", body = ErrorBody),
        (status = 422, description = "refused: wrong_domain, wrong_chain, expired, value_not_allowed, bad_signature, high_s, nonce_used, nonce_ahead, target_not_trusting, target_not_allowed, selector_not_allowed, budget_spent, simulation_reverted", body = ErrorBody),
        (status = 429, description = "quota_exceeded (Retry-After: seconds until the window ends)", body = ErrorBody),
        (status = 503, description = "gas_price_too_high, or the chain or database is unavailable", body = ErrorBody),
    ))]
pub async fn relay(
    State(state): State<AppState>,
    key: Option<Extension<KeyName>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let relayer = relayer(&state)?;
    let input = input(parse_body(&body)?)?;
    let key = key.map(|Extension(KeyName(name))| name);
    let submitted = relayer.relay(input, key.as_deref()).await.map_err(relay_error)?;
    let record = submitted.record();
    let relayed = match &state.txm {
        Some(txm) => txm.store.relayed(&record.id).await?,
        None => Vec::new(),
    };
    let mut answer = Transaction::of(record);
    answer.relayed = Some(relayed.iter().map(RelayedView::of).collect());
    let status = match submitted {
        Submitted::New(_) => StatusCode::ACCEPTED,
        Submitted::Existing(_) => StatusCode::OK,
    };
    Ok(respond(status, &answer))
}
