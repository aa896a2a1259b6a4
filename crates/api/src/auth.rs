//! API keys: clients send `Authorization: Bearer <key>`; the configuration holds only SHA-256 digests.
//! Reads are open when `api.public_reads` is set; otherwise they need a key with the `read` scope.
//! The key itself is never logged.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gemgate_config::Scope;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The name of the API key that authorized a request, for handlers that count per key (the relayer's
/// quotas). Set by the scope checks of writes.
#[derive(Debug, Clone)]
pub struct KeyName(pub String);

/// The key in the request (name, scopes), or `None` without a (known) key.
pub fn key_of(state: &AppState, request: &Request) -> Option<(String, Vec<Scope>)> {
    let header = request.headers().get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let key = header.strip_prefix("Bearer ")?.trim();
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
    if !state.settings.public_reads {
        match key_of(&state, &request) {
            None => return Err(ApiError::Unauthorized),
            Some((_, scopes)) if !scopes.iter().any(|s| matches!(s, Scope::Read | Scope::Admin)) => {
                return Err(ApiError::Forbidden);
            }
            Some(_) => {}
        }
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
    match key_of(state, &request) {
        None => Err(ApiError::Unauthorized),
        Some((_, scopes)) if !scopes.iter().any(|s| *s == scope || matches!(s, Scope::Admin)) => {
            Err(ApiError::Forbidden)
        }
        Some((name, _)) => {
            request.extensions_mut().insert(KeyName(name));
            Ok(next.run(request).await)
        }
    }
}
