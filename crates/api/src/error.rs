//! `ApiError`: 4xx with a stable code and a message that says what is wrong; 5xx with a generic body
//! (the cause is logged once, here).

use crate::dto::{ErrorBody, ErrorDetail};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gemgate_domain::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        code: &'static str,
        message: String,
    },
    Unauthorized,
    Forbidden,
    NotFound {
        what: String,
    },
    /// The request conflicts with what exists (an idempotency key reused with another body).
    Conflict {
        message: String,
    },
    /// Well-formed but refused (a transaction that reverts, cannot be paid, or breaks a rule).
    Unprocessable {
        code: &'static str,
        message: String,
    },
    Unavailable {
        message: String,
    },
    /// A refusal with its own status and stable code (the relayer's), `Retry-After` when it says.
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    Internal {
        message: String,
    },
}

/// Every error answer in the one `ApiError` body. The framework's own refusals (a body over
/// `api.max_body_bytes`, a query or path that does not parse, an unknown route or method) come as plain
/// text or empty; they are rewritten with a stable code, keeping their status and headers (`Allow`). A
/// handler that panics is answered 500 (and logged) instead of a dropped connection.
pub async fn uniform(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::FutureExt as _;
    let response = match std::panic::AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            return ApiError::Internal { message: "a handler panicked".into() }.into_response();
        }
    };
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_body",
        429 => "rate_limited",
        500..=599 => "internal",
        _ => "refused",
    };
    let message = match text {
        // A server error's text is never shown: it may name internals.
        Ok(text) if !text.is_empty() && !status.is_server_error() => text,
        _ => status.canonical_reason().unwrap_or("refused").to_string(),
    };
    let body = serde_json::to_vec(&ErrorBody { error: ErrorDetail { code, message } }).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts
        .headers
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if error.is_retryable() {
            ApiError::Unavailable { message: error.to_string() }
        } else {
            ApiError::Internal { message: error.to_string() }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <api key>".to_string())
            }
            ApiError::Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "this key lacks the scope for this endpoint".into())
            }
            ApiError::NotFound { what } => (StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            ApiError::Conflict { message } => (StatusCode::CONFLICT, "conflict", message),
            ApiError::Unprocessable { code, message } => (StatusCode::UNPROCESSABLE_ENTITY, code, message),
            ApiError::Unavailable { message } => {
                tracing::warn!(%message, "request failed: dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "temporarily unavailable; retry later".into(),
                )
            }
            ApiError::Internal { message } => {
                tracing::error!(%message, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into())
            }
            ApiError::Refused { status, code, message, retry_after } => {
                let body = Json(ErrorBody { error: ErrorDetail { code, message } });
                return match retry_after {
                    Some(seconds) => (status, [(axum::http::header::RETRY_AFTER, seconds.to_string())], body)
                        .into_response(),
                    None => (status, body).into_response(),
                };
            }
        };
        (status, Json(ErrorBody { error: ErrorDetail { code, message } })).into_response()
    }
}
