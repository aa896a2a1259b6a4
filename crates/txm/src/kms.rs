//! AWS KMS as a `Signer` (cargo feature `aws-kms`), through alloy's KMS signer:
//!
//! - the key is an asymmetric `ECC_SECG_P256K1` key with `SIGN_VERIFY` usage; its address comes from
//!   `GetPublicKey` at start (`kms:GetPublicKey`), and each transaction hash is signed with `Sign`
//!   (`kms:Sign`, `MessageType = DIGEST`, `ECDSA_SHA_256`): KMS never sees anything but the 32-byte hash;
//! - KMS answers with a DER signature whose `s` may be in the upper half; it is normalised to low `s` and
//!   its recovery parity found by trying both against the key, so what is stored recovers to the address;
//! - credentials come from the AWS default chain (environment, shared profile, web identity, ECS task role,
//!   instance metadata), never from gemgate's configuration; they never reach logs or errors.

use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::Signer as _;
use alloy::signers::aws::aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use alloy::signers::aws::{AwsSigner, AwsSignerError, aws_config, aws_sdk_kms};
use async_trait::async_trait;
use gemgate_domain::SignerError;
use gemgate_domain::ports::{SignOutcome, SignRequest, Signer};

/// What a KMS signer needs (from `[[signers]]` with `kind = "aws-kms"`).
#[derive(Debug, Clone)]
pub struct KmsSettings {
    pub name: String,
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// Else the default chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Else the region's public KMS endpoint.
    pub endpoint: Option<url::Url>,
}

/// One KMS call may take this long in all, retries included (the SDK retries throttling and transport
/// failures itself); one attempt of it this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KmsSigner {
    name: String,
    key: AwsSigner,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner").field("name", &self.name).field("address", &self.key.address()).finish()
    }
}

impl KmsSigner {
    /// Loads the AWS configuration (credentials, region) and reads the key's address from KMS.
    pub async fn connect(settings: KmsSettings) -> Result<Self, SignerError> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(CALL_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint.as_str());
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(SignerError::KeyUnavailable {
                signer: settings.name,
                message: "no AWS region: set `region` on the signer, or AWS_REGION".into(),
            });
        }
        Self::with_client(&settings.name, aws_sdk_kms::Client::new(&config), &settings.key_id).await
    }

    /// With a KMS client built elsewhere.
    pub async fn with_client(
        name: &str,
        client: aws_sdk_kms::Client,
        key_id: &str,
    ) -> Result<Self, SignerError> {
        let key = AwsSigner::new(client, key_id.to_string(), None).await.map_err(|e| {
            SignerError::KeyUnavailable {
                signer: name.to_string(),
                message: format!("KMS key {key_id}: {}", describe(&e)),
            }
        })?;
        Ok(Self { name: name.to_string(), key })
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    async fn sign_transaction(&self, request: &SignRequest) -> Result<SignOutcome, SignerError> {
        let signature = self.key.sign_hash(&request.signing_hash).await.map_err(|e| {
            let kms = match &e {
                alloy::signers::Error::Other(inner) => inner.downcast_ref::<AwsSignerError>(),
                _ => None,
            };
            SignerError::Backend {
                signer: self.name.clone(),
                message: kms.map(describe).unwrap_or_else(|| e.to_string()),
                retryable: kms.is_none_or(is_transient),
            }
        })?;
        Ok(SignOutcome::Signed { signature })
    }
}

/// The SDK's whole error chain ("service error: NotFoundException: Key ... does not exist"): a bare
/// `SdkError` prints only "service error".
fn describe(error: &AwsSignerError) -> String {
    match error {
        AwsSignerError::Sign(e) => DisplayErrorContext(e).to_string(),
        AwsSignerError::GetPublicKey(e) => DisplayErrorContext(e).to_string(),
        other => other.to_string(),
    }
}

/// Worth asking again: no answer, throttling or a KMS-side fault, not a refusal (access denied, a disabled,
/// deleted or wrong-kind key).
fn is_transient(error: &AwsSignerError) -> bool {
    let AwsSignerError::Sign(e) = error else { return false };
    match e {
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() >= 500
                || matches!(
                    service.err().code(),
                    Some(
                        "ThrottlingException"
                            | "KMSInternalException"
                            | "DependencyTimeoutException"
                            | "KeyUnavailableException"
                    )
                )
        }
        _ => true,
    }
}
