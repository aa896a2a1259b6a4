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
