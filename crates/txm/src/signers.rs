//! The configured signers behind the `Signer` port: a local private key (from a secret), an Ethereum
//! keystore v3 (scrypt) with its password from a secret, DFNS (`dfns`) and, with the `aws-kms` feature,
//! AWS KMS (`kms`). Key material lives only inside the signer; what leaves is an address and signatures.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::Address;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use gemgate_config::{SignerKind, SignerSettings};
use gemgate_domain::ports::{SignOutcome, SignRequest, Signer};
use gemgate_domain::{ChainId, SignerError};

use crate::dfns::{DfnsSettings, DfnsSigner};

/// A key held in memory: a local key or a decrypted keystore.
pub struct LocalSigner {
    name: String,
    key: PrivateKeySigner,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner").field("name", &self.name).field("address", &self.key.address()).finish()
    }
}

impl LocalSigner {
    pub fn new(name: &str, key: PrivateKeySigner) -> Self {
        Self { name: name.to_string(), key }
    }

    /// From 32 bytes of hex (optional `0x`). The error never contains the text.
    pub fn from_hex(name: &str, hex_key: &str) -> Result<Self, SignerError> {
        let key = hex_key.trim().parse::<PrivateKeySigner>().map_err(|_| SignerError::KeyUnavailable {
            signer: name.to_string(),
            message: "the key is not 32 bytes of hex".into(),
        })?;
        Ok(Self::new(name, key))
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    async fn sign_transaction(&self, request: &SignRequest) -> Result<SignOutcome, SignerError> {
        let signature = self.key.sign_hash_sync(&request.signing_hash).map_err(|e| SignerError::Backend {
            signer: self.name.clone(),
            message: e.to_string(),
            retryable: false,
        })?;
        Ok(SignOutcome::Signed { signature })
    }

    fn signs_in_process(&self) -> bool {
        true
    }
}

/// A configured signer: its name, the chains it may send on, and the signer itself.
#[derive(Clone)]
pub struct NamedSigner {
    pub name: String,
    pub chains: Vec<ChainId>,
    pub address: Address,
    pub signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for NamedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSigner").field("name", &self.name).field("address", &self.address).finish()
    }
}

/// Opens every configured signer (decrypting keystores, which takes about a second each with scrypt).
pub async fn open(settings: &[SignerSettings]) -> Result<HashMap<String, NamedSigner>, SignerError> {
    let mut signers = HashMap::new();
    for s in settings {
        let signer: Arc<dyn Signer> = match &s.kind {
            SignerKind::Local { key } => Arc::new(LocalSigner::from_hex(&s.name, key.expose())?),
            SignerKind::Keystore { path, password } => {
                let (path, password) = (path.clone(), password.expose().clone());
                let key = tokio::task::spawn_blocking(move || crate::keys::open(&path, password.as_bytes()))
                    .await
                    .map_err(|e| SignerError::KeyUnavailable {
                        signer: s.name.clone(),
                        message: e.to_string(),
                    })?
                    .map_err(|e| SignerError::KeyUnavailable {
                        signer: s.name.clone(),
                        message: e.to_string(),
                    })?;
                Arc::new(LocalSigner::new(&s.name, key))
            }
            SignerKind::Dfns { base_url, app_id, wallet_id, token, credential_id, private_key } => Arc::new(
                DfnsSigner::connect(DfnsSettings {
                    name: s.name.clone(),
                    base_url: base_url.expose().clone(),
                    app_id: app_id.clone(),
                    wallet_id: wallet_id.clone(),
                    token: token.expose().clone(),
                    credential_id: credential_id.clone(),
                    private_key_pem: private_key.expose().clone(),
                })
                .await?,
            ),
            #[cfg(feature = "aws-kms")]
            SignerKind::AwsKms { key_id, region, endpoint } => Arc::new(
                crate::kms::KmsSigner::connect(crate::kms::KmsSettings {
                    name: s.name.clone(),
                    key_id: key_id.clone(),
                    region: region.clone(),
                    endpoint: endpoint.as_ref().map(|url| url.expose().clone()),
                })
                .await?,
            ),
            #[cfg(not(feature = "aws-kms"))]
            SignerKind::AwsKms { .. } => {
                return Err(SignerError::KeyUnavailable {
                    signer: s.name.clone(),
                    message: "this gemgate is built without AWS KMS: build it with `--features aws-kms`"
                        .into(),
                });
            }
        };
        let address = signer.address();
        signers.insert(
            s.name.clone(),
            NamedSigner { name: s.name.clone(), chains: s.chains.clone(), address, signer },
        );
    }
    Ok(signers)
}
