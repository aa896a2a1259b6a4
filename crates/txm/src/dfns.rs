//! DFNS as a `Signer`, with a service account:
//!
//! - the wallet's address comes from `GET /wallets/{walletId}` at start;
//! - each signature is a state-changing request, so it carries a *user action signature*: the request's
//!   payload, method and path go to `POST /auth/action/init`, which answers with a challenge; the challenge
//!   is signed with the service account's credential key (Ed25519, PKCS#8 PEM) as a `Key` assertion over
//!   `clientData` (`{"type":"key.get","challenge":...,"origin":...,"crossOrigin":false}`), and
//!   `POST /auth/action` turns the assertion into a one-use user action token;
//! - `POST /wallets/{walletId}/signatures` with `{"kind":"Transaction","transaction":"0x<unsigned>",
//!   "externalId":...}`, the bearer token and the `X-DFNS-USERACTION` header. The answer's `status` is
//!   `Signed` (with `signature: {r, s, recid}`), `Pending`/`Executing` (a policy holds it for approval:
//!   asked again later with `GET /wallets/{walletId}/signatures/{id}`), or `Rejected`/`Failed`.
//!
//! The bearer token and the credential key never reach logs or errors.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy::primitives::{Address, U256};
use async_trait::async_trait;
use base64::Engine;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use gemgate_domain::SignerError;
use gemgate_domain::ports::{SignOutcome, SignRequest, Signer};
use serde_json::{Value, json};

/// What a DFNS signer needs (from `[[signers]]` with `kind = "dfns"`).
pub struct DfnsSettings {
    pub name: String,
    pub base_url: url::Url,
    pub app_id: String,
    pub wallet_id: String,
    pub token: String,
    pub credential_id: String,
    /// The credential's Ed25519 private key, PKCS#8 PEM.
    pub private_key_pem: String,
}

pub struct DfnsSigner {
    name: String,
    base_url: url::Url,
    app_id: String,
    wallet_id: String,
    token: String,
    credential_id: String,
    key: ed25519_dalek::SigningKey,
    address: Address,
    http: reqwest::Client,
    /// Signature requests already made, by idempotency key: asked again by id, never made twice.
    requests: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for DfnsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfnsSettings")
            .field("name", &self.name)
            .field("wallet_id", &self.wallet_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DfnsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfnsSigner").field("name", &self.name).field("wallet_id", &self.wallet_id).finish()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl DfnsSigner {
    /// Reads the credential key and asks DFNS for the wallet's address.
    pub async fn connect(settings: DfnsSettings) -> Result<Self, SignerError> {
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(settings.private_key_pem.trim()).map_err(|_| {
                SignerError::KeyUnavailable {
                    signer: settings.name.clone(),
                    message: "the credential private key is not an Ed25519 PKCS#8 PEM key".into(),
                }
            })?;
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().map_err(|e| {
                SignerError::KeyUnavailable { signer: settings.name.clone(), message: e.to_string() }
            })?;
        let mut signer = DfnsSigner {
            name: settings.name,
            base_url: settings.base_url,
            app_id: settings.app_id,
            wallet_id: settings.wallet_id,
            token: settings.token,
            credential_id: settings.credential_id,
            key,
            address: Address::ZERO,
            http,
            requests: Mutex::new(HashMap::new()),
        };
        let wallet =
            signer.call(reqwest::Method::GET, &format!("/wallets/{}", signer.wallet_id), None, None).await?;
        signer.address = wallet["address"].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| {
            SignerError::KeyUnavailable {
                signer: signer.name.clone(),
                message: "the wallet has no EVM address".into(),
            }
        })?;
        Ok(signer)
    }

    fn backend(&self, message: impl Into<String>, retryable: bool) -> SignerError {
        SignerError::Backend { signer: self.name.clone(), message: message.into(), retryable }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        user_action: Option<&str>,
    ) -> Result<Value, SignerError> {
        let url = self
            .base_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| self.backend(e.to_string(), false))?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("X-DFNS-APPID", &self.app_id)
            .header("Content-Type", "application/json");
        if let Some(token) = user_action {
            request = request.header("X-DFNS-USERACTION", token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response =
            request.send().await.map_err(|e| self.backend(format!("{path}: {}", e.without_url()), true))?;
        let status = response.status();
        let text =
            response.text().await.map_err(|e| self.backend(format!("{path}: {}", e.without_url()), true))?;
        if !status.is_success() {
            let message: String = text.chars().take(300).collect();
            return Err(self.backend(
                format!("{path}: HTTP {status}: {message}"),
                status.is_server_error() || status.as_u16() == 429,
            ));
        }
        serde_json::from_str(&text).map_err(|e| self.backend(format!("{path}: not JSON: {e}"), false))
    }

    /// The user action token for one state-changing request.
    async fn user_action(&self, method: &str, path: &str, payload: &str) -> Result<String, SignerError> {
        let init = json!({
            "userActionPayload": payload,
            "userActionHttpMethod": method,
            "userActionHttpPath": path,
            "userActionServerKind": "Api",
        });
        let challenge =
            self.call(reqwest::Method::POST, "/auth/action/init", Some(&init.to_string()), None).await?;
        let (Some(text), Some(identifier)) =
            (challenge["challenge"].as_str(), challenge["challengeIdentifier"].as_str())
        else {
            return Err(self.backend("/auth/action/init: no challenge in the answer", false));
        };
        let origin = self.base_url.origin().ascii_serialization();
        let client_data =
            json!({"type": "key.get", "challenge": text, "origin": origin, "crossOrigin": false}).to_string();
        let signature = self.key.sign(client_data.as_bytes());
        let assertion = json!({
            "challengeIdentifier": identifier,
            "firstFactor": {
                "kind": "Key",
                "credentialAssertion": {
                    "credId": self.credential_id,
                    "clientData": b64url(client_data.as_bytes()),
                    "signature": b64url(&signature.to_bytes()),
                },
            },
        });
        let action =
            self.call(reqwest::Method::POST, "/auth/action", Some(&assertion.to_string()), None).await?;
        action["userAction"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.backend("/auth/action: no userAction token in the answer", false))
    }

    /// A signature request's answer as an outcome.
    fn outcome(&self, answer: &Value) -> Result<SignOutcome, SignerError> {
        let id = answer["id"].as_str().unwrap_or_default().to_string();
        match answer["status"].as_str().unwrap_or_default() {
            "Signed" | "Confirmed" => {
                let signature = &answer["signature"];
                let scalar = |field: &str| {
                    signature[field]
                        .as_str()
                        .and_then(|h| U256::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                };
                let (Some(r), Some(s)) = (scalar("r"), scalar("s")) else {
                    return Err(self.backend(format!("signature {id}: no r and s in the answer"), false));
                };
                let parity = signature["recid"].as_u64().unwrap_or(0) % 2 == 1;
                Ok(SignOutcome::Signed { signature: alloy::primitives::Signature::new(r, s, parity) })
            }
            "Pending" | "Executing" => Ok(SignOutcome::Pending { request_id: id }),
            "Rejected" | "Failed" => Err(SignerError::Rejected {
                signer: self.name.clone(),
                request_id: id,
                reason: answer["reason"].as_str().unwrap_or("refused by policy").to_string(),
            }),
            other => Err(self.backend(format!("signature {id}: unknown status {other:?}"), true)),
        }
    }
}

#[async_trait]
impl Signer for DfnsSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(&self, request: &SignRequest) -> Result<SignOutcome, SignerError> {
        let known = self.requests.lock().ok().and_then(|r| r.get(&request.idempotency_key).cloned());
        if let Some(id) = known {
            let path = format!("/wallets/{}/signatures/{id}", self.wallet_id);
            let answer = self.call(reqwest::Method::GET, &path, None, None).await?;
            return self.outcome(&answer);
        }
        let path = format!("/wallets/{}/signatures", self.wallet_id);
        let payload = json!({
            "kind": "Transaction",
            "transaction": request.unsigned.to_string(),
            "externalId": request.idempotency_key,
        })
        .to_string();
        let token = self.user_action("POST", &path, &payload).await?;
        let answer = self.call(reqwest::Method::POST, &path, Some(&payload), Some(&token)).await?;
        if let (Some(id), Ok(mut requests)) = (answer["id"].as_str(), self.requests.lock()) {
            requests.insert(request.idempotency_key.clone(), id.to_string());
        }
        self.outcome(&answer)
    }
}
