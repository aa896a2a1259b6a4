//! Bearer JWTs (`[api.jwt]`): verified against the issuer's JSON Web Key Set with one of the configured
//! algorithms (RS256, ES256, EdDSA), then `iss`, `aud`, `exp` and `nbf` checked (with `leeway`); `sub` names
//! the caller, `scopes_claim` gives its scopes. Keys are cached: an unknown `kid` refetches the set (at most
//! once per `REFETCH_AFTER`, so random `kid`s cannot make gemgate hammer the issuer), and the set is
//! refreshed anyway once older than `MAX_AGE`. No token, claim or key is ever logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gemgate_config::{JwtAlgorithm, JwtSettings, Scope};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};

/// The shortest time between two fetches of the key set.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// How long a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest key set accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Who a verified token names, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    pub subject: String,
    pub scopes: Vec<Scope>,
}

/// Why a token was refused: said to the client in general terms (the detail goes to the debug log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's key is not in the issuer's key set")]
    UnknownKey,
    #[error("the token's signature or claims did not verify: {0}")]
    Invalid(&'static str),
    #[error("the issuer's key set cannot be fetched")]
    KeysUnavailable,
}

struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Key>,
    fetched: Option<Instant>,
}

/// Verifies bearer JWTs for `[api.jwt]`.
pub struct JwtVerifier {
    settings: JwtSettings,
    client: reqwest::Client,
    cache: RwLock<Cache>,
    /// When the key set was last fetched (or tried), held while fetching so one request fetches.
    fetching: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Whether a bearer value is shaped like a JWT (three dot-separated parts) rather than an API key.
pub fn looks_like_jwt(bearer: &str) -> bool {
    bearer.split('.').count() == 3 && bearer.len() > 20
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { settings, client, cache: RwLock::default(), fetching: Mutex::new(None) }
    }

    /// The caller a token names, once its signature and claims verified.
    pub async fn verify(&self, token: &str) -> Result<TokenCaller, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !self.settings.algorithms.iter().any(|a| algorithm(*a) == header.alg) {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.unwrap_or_default();
        let stale = self.cache.read().await.fetched.is_none_or(|at| at.elapsed() > MAX_AGE);
        if stale || !self.cache.read().await.keys.contains_key(&kid) {
            self.refetch().await;
        }
        let cache = self.cache.read().await;
        if cache.fetched.is_none() {
            return Err(TokenError::KeysUnavailable);
        }
        let Some(key) = cache.keys.get(&kid) else { return Err(TokenError::UnknownKey) };
        if key.algorithm != header.alg {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let claims =
            jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not yet valid (nbf)",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                    _ => "invalid",
                };
                tracing::debug!(reason, "JWT refused");
                TokenError::Invalid(reason)
            })?;
        let subject = claims.claims["sub"].as_str().unwrap_or_default().to_string();
        if subject.is_empty() {
            return Err(TokenError::Invalid("a required claim is missing"));
        }
        Ok(TokenCaller { subject, scopes: scopes(&claims.claims[&self.settings.scopes_claim]) })
    }

    /// Fetches the key set unless it was fetched within `REFETCH_AFTER`; on failure the old keys stay.
    async fn refetch(&self) {
        let mut last = self.fetching.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let mut cache = self.cache.write().await;
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
            }
            Err(error) => tracing::warn!(%error, url = %self.settings.jwks_url, "cannot fetch the JWKS"),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, String> {
        let response =
            self.client.get(self.settings.jwks_url.clone()).send().await.map_err(|e| request_failure(&e))?;
        if !response.status().is_success() {
            return Err(format!("the issuer answered {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n as usize > MAX_JWKS_BYTES) {
            return Err("the key set is too large".into());
        }
        let body = response.bytes().await.map_err(|e| request_failure(&e))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("the key set is too large".into());
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                // Symmetric and other keys are never accepted from a key set.
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            keys.insert(jwk.common.key_id.clone().unwrap_or_default(), Key { algorithm, key });
        }
        Ok(keys)
    }
}

fn request_failure(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        "the request failed".into()
    }
}

/// gemgate's scopes in a claim: a space-separated string or an array of strings; unknown ones ignored.
fn scopes(claim: &serde_json::Value) -> Vec<Scope> {
    let names: Vec<&str> = match claim {
        serde_json::Value::String(text) => text.split_whitespace().collect(),
        serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    names.into_iter().filter_map(Scope::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_a_string_or_an_array_and_unknown_ones_are_ignored() {
        assert_eq!(scopes(&serde_json::json!("read openid admin")), vec![Scope::Read, Scope::Admin]);
        assert_eq!(scopes(&serde_json::json!(["transact", "x"])), vec![Scope::Transact]);
        assert_eq!(scopes(&serde_json::json!(3)), Vec::<Scope>::new());
    }

    #[test]
    fn only_three_part_bearers_are_taken_for_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("0123456789abcdef0123456789abcdef"));
    }
}
