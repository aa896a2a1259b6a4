//! Who is calling: `Authorization: Bearer <API key>` (the configuration holds only SHA-256 digests), or
//! `Authorization: Bearer <JWT>` from the identity provider of `[api.jwt]` (see `jwt`). Reads are open
//! when `api.public_reads` is set; otherwise they need the `read` scope. No key or token is ever logged.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use gemgate_config::Scope;
use sha2::{Digest, Sha256};

use crate::limits::Group;
use crate::{ApiError, AppState};

/// Takes a token from the caller's bucket, or refuses with 429.
fn limit(state: &AppState, group: Group, who: &str) -> Result<(), ApiError> {
    state.limits.check(group, who, std::time::Instant::now()).map_err(|limited| {
        state.http.rate_limited.inc();
        ApiError::Refused {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: limited.message,
            retry_after: Some(limited.retry_after),
        }
    })
}

/// The client's address (what anonymous reads are limited by), or `unknown`.
fn peer(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string())
}

/// The name of the API key (or `jwt:<subject>`) that authorized a request, for handlers that count per
/// caller (the relayer's quotas). Set by the scope checks of writes.
#[derive(Debug, Clone)]
pub struct KeyName(pub String);

/// Who made a request and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `<key name>` for an API key, `jwt:<subject>` for a token.
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// The caller a request authenticates as: `Ok(None)` without credentials (or with an unknown API key),
/// an error for a token that does not verify.
pub async fn caller_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let session = headers.get("x-parse-session-token").and_then(|h| h.to_str().ok());
    if let (Some(sessions), Some(token)) = (&state.parse, session) {
        return match sessions.verify(token.trim()).await {
            Ok(session) => {
                Ok(Some(Caller { name: format!("parse:{}", session.user_id), scopes: session.scopes }))
            }
            Err(crate::parse::SessionError::Unavailable) => {
                Err(ApiError::Unavailable { message: "the Parse Server cannot be reached".into() })
            }
            Err(error) => Err(unauthorized(error.to_string())),
        };
    }
    let Some(bearer) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Ok(None);
    };
    if let Some(verifier) = state.jwt.as_ref().filter(|_| crate::jwt::looks_like_jwt(bearer)) {
        return match verifier.verify(bearer).await {
            Ok(token) => Ok(Some(Caller { name: format!("jwt:{}", token.subject), scopes: token.scopes })),
            Err(crate::jwt::TokenError::KeysUnavailable) => {
                Err(ApiError::Unavailable { message: "the JWKS cannot be fetched".into() })
            }
            Err(error) => Err(unauthorized(error.to_string())),
        };
    }
    Ok(key_of(state, bearer).map(|(name, scopes)| Caller { name, scopes }))
}

/// 401 with why the credentials were refused.
fn unauthorized(message: String) -> ApiError {
    ApiError::Refused {
        status: axum::http::StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message,
        retry_after: None,
    }
}

/// The API key `key` (name, scopes), or `None` if it is not configured.
fn key_of(state: &AppState, key: &str) -> Option<(String, Vec<Scope>)> {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    // Compare every configured digest without stopping early, so timing does not reveal which matched.
    let mut found = None;
    for configured in &state.settings.keys {
        let equal =
            configured.key_sha256.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if equal {
            found = Some((configured.name.clone(), configured.scopes.clone()));
        }
    }
    found
}

pub async fn require_read(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = if state.settings.public_reads {
        // Public reads need no credentials; given ones only choose the rate-limit bucket.
        caller_of(&state, request.headers()).await.ok().flatten()
    } else {
        match caller_of(&state, request.headers()).await? {
            None => return Err(ApiError::Unauthorized),
            Some(caller) if !caller.scopes.iter().any(|s| matches!(s, Scope::Read | Scope::Admin)) => {
                return Err(ApiError::Forbidden);
            }
            Some(caller) => Some(caller),
        }
    };
    match &caller {
        Some(caller) => limit(&state, Group::Read, &caller.name)?,
        None => limit(&state, Group::Anonymous, &peer(&request))?,
    }
    Ok(next.run(request).await)
}

/// Operator endpoints: a key with the `admin` scope, whatever `public_reads` says.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state, request, next, Scope::Admin).await
}

/// Transaction writes: a key with the `transact` scope (or `admin`).
pub async fn require_transact(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state, request, next, Scope::Transact).await
}

/// Relaying users' meta-transactions: a key with the `relay` scope (or `admin`).
pub async fn require_relay(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    require(&state, request, next, Scope::Relay).await
}

async fn require(
    state: &AppState,
    mut request: Request,
    next: Next,
    scope: Scope,
) -> Result<Response, ApiError> {
    match caller_of(state, request.headers()).await? {
        None => Err(ApiError::Unauthorized),
        Some(caller) if !caller.scopes.iter().any(|s| *s == scope || matches!(s, Scope::Admin)) => {
            Err(ApiError::Forbidden)
        }
        Some(caller) => {
            let group = match scope {
                Scope::Read => Group::Read,
                Scope::Transact => Group::Transact,
                Scope::Relay => Group::Relay,
                Scope::Admin => Group::Admin,
            };
            limit(state, group, &caller.name)?;
            request.extensions_mut().insert(KeyName(caller.name.clone()));
            request.extensions_mut().insert(caller);
            Ok(next.run(request).await)
        }
    }
}
