//! Parse Server sessions (`[api.parse]`), the auth of existing Gemforce backends: a request with
//! `X-Parse-Session-Token` is checked with `GET <server_url>/users/me` (with the app id, and the REST key
//! when configured); the user's `objectId` names the caller (`parse:<objectId>`) and every session gets the
//! configured `scopes` (never scopes from the user object, which Parse lets users write). Answers are cached for `cache_ttl` by the
//! SHA-256 of the token (a refused token for a few seconds), so a logged-out session stops working within
//! `cache_ttl`. Tokens are never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gemgate_config::{ParseSettings, Scope};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// How long a refused token is remembered (so a flood of bad tokens does not become a flood of lookups).
const REFUSED_TTL: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(10);
/// When the cache grows past this, expired entries are dropped.
const PRUNE_AT: usize = 10_000;

/// A verified session: the user and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCaller {
    pub user_id: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the Parse session is invalid or expired")]
    Invalid,
    #[error("the Parse Server cannot be reached")]
    Unavailable,
}

/// Checks Parse session tokens against the configured Parse Server.
pub struct ParseSessions {
    settings: ParseSettings,
    client: reqwest::Client,
    /// By the SHA-256 of the token: the answer and until when it holds.
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

type Cached = (Result<SessionCaller, SessionError>, Instant);

impl std::fmt::Debug for ParseSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParseSessions").field("app_id", &self.settings.app_id).finish_non_exhaustive()
    }
}

impl ParseSessions {
    pub fn new(settings: ParseSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { settings, client, cache: Mutex::default() }
    }

    pub async fn verify(&self, token: &str) -> Result<SessionCaller, SessionError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((answer, _)) = self.cache.lock().await.get(&digest).filter(|(_, until)| *until > now) {
            return answer.clone();
        }
        let answer = self.ask(token).await;
        let ttl = match &answer {
            Ok(_) => self.settings.cache_ttl,
            Err(SessionError::Invalid) => REFUSED_TTL,
            Err(SessionError::Unavailable) => return answer,
        };
        let mut cache = self.cache.lock().await;
        if cache.len() >= PRUNE_AT {
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(digest, (answer.clone(), now + ttl));
        answer
    }

    async fn ask(&self, token: &str) -> Result<SessionCaller, SessionError> {
        let url = format!("{}/users/me", self.settings.server_url.as_str().trim_end_matches('/'));
        let mut request = self
            .client
            .get(url)
            .header("X-Parse-Application-Id", &self.settings.app_id)
            .header("X-Parse-Session-Token", token);
        if let Some(key) = &self.settings.rest_key {
            request = request.header("X-Parse-REST-API-Key", key.expose());
        }
        let response = request.send().await.map_err(|error| {
            tracing::warn!(
                timeout = error.is_timeout(),
                connect = error.is_connect(),
                "Parse Server unreachable"
            );
            SessionError::Unavailable
        })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(SessionError::Unavailable);
        }
        if !status.is_success() {
            return Err(SessionError::Invalid);
        }
        let body = response.bytes().await.map_err(|_| SessionError::Unavailable)?;
        let user: serde_json::Value = serde_json::from_slice(&body).map_err(|_| SessionError::Unavailable)?;
        let user_id = user["objectId"].as_str().filter(|id| !id.is_empty()).ok_or(SessionError::Invalid)?;
        Ok(SessionCaller { user_id: user_id.to_string(), scopes: self.settings.scopes.clone() })
    }
}
