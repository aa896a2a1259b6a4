//! The AWS KMS signer (feature `aws-kms`) against a local fake of the documented KMS JSON protocol
//! (`X-Amz-Target: TrentService.GetPublicKey` / `TrentService.Sign`, `application/x-amz-json-1.1`), since
//! AWS cannot be reached from here. The AWS SDK and alloy's KMS signer run for real; the fake checks every
//! request's SigV4 signature against the secret key, the region and the service, holds a secp256k1 key, signs
//! only 32-byte digests (`MessageType = DIGEST`) and, like KMS, answers every other time with an upper-half
//! `s`. The signer is opened from `[[signers]]` settings the way `gemgate txm` opens it; credentials come from
//! the environment (the AWS default chain).
#![cfg(feature = "aws-kms")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::aws::aws_sdk_kms;
use alloy::signers::k256::ecdsa::signature::hazmat::PrehashSigner;
use alloy::signers::k256::ecdsa::{Signature as EcdsaSignature, SigningKey};
use alloy::signers::local::PrivateKeySigner;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gemgate_config::{SecretUrl, SignerKind, SignerSettings};
use gemgate_domain::TxState;
use gemgate_testkit::{AnvilOptions, anvil_or_skip};
use gemgate_txm::kms::KmsSigner;
use gemgate_txm::{Submit, TxmOptions, signers};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod support;

/// anvil's account 1: funded, so the KMS key can pay for its transactions.
const KMS_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const KEY_ID: &str = "0f6a3c52-1111-4f5e-9a7b-6f0e2c9d8a11";
const ACCESS_KEY: &str = "AKIAGEMGATETESTKEY01";
const SECRET_KEY: &str = "gemgate/test/secret+access+key/0123456789";
const REGION: &str = "eu-central-1";

#[derive(Default)]
struct Calls {
    public_keys: u64,
    signatures: u64,
    high_s: u64,
    refused: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    key: SigningKey,
    calls: Arc<Mutex<Calls>>,
}

fn kms_error(kind: &str, message: &str) -> Response {
    let body = json!({ "__type": kind, "message": message }).to_string();
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.1"), ("x-amzn-errortype", kind)],
        body,
    )
        .into_response()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks AWS Signature Version 4 the way AWS does: rebuilds the canonical request from what arrived and
/// signs it with the secret key. `Err` names what is wrong (never the secret).
fn check_sigv4(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or("no Authorization")?;
    let fields = authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        fields.split(", ").find_map(|f| f.strip_prefix(&format!("{name}="))).ok_or(format!("no {name}"))
    };
    let (credential, signed_headers, signature) =
        (field("Credential")?, field("SignedHeaders")?, field("Signature")?);
    let (access_key, scope) = credential.split_once('/').ok_or("bad Credential")?;
    if access_key != ACCESS_KEY {
        return Err(format!("unknown access key {access_key}"));
    }
    let [date, region, service, terminal] = scope.split('/').collect::<Vec<_>>()[..] else {
        return Err("bad credential scope".into());
    };
    if region != REGION || service != "kms" || terminal != "aws4_request" {
        return Err(format!("credential scope {scope} is not for kms in {REGION}"));
    }
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or("no X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("X-Amz-Date is not the scope's date".into());
    }
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<&str> =
            headers.get_all(name).iter().map(|v| v.to_str().unwrap_or_default().trim()).collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    for required in ["host", "x-amz-date", "x-amz-target"] {
        if !signed_headers.split(';').any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        uri.path(),
        uri.query().unwrap_or_default(),
        hex::encode(Sha256::digest(body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    for part in [region, service, terminal] {
        key = hmac(&key, part);
    }
    if hex::encode(hmac(&key, &string_to_sign)) != signature {
        return Err("the request signature does not match".into());
    }
    Ok(())
}

async fn kms(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = check_sigv4(&method, &uri, &headers, &body) {
        fake.calls.lock().unwrap().refused.push(why.clone());
        return kms_error("InvalidSignatureException", &why);
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return kms_error("SerializationException", "the body is not JSON");
    };
    let key_id = request["KeyId"].as_str().unwrap_or_default();
    if key_id != KEY_ID && key_id != "alias/gemgate-hot" {
        return kms_error("NotFoundException", &format!("Key '{key_id}' does not exist"));
    }
    let arn = format!("arn:aws:kms:{REGION}:111122223333:key/{KEY_ID}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let answer = match target {
        "TrentService.GetPublicKey" => {
            fake.calls.lock().unwrap().public_keys += 1;
            // SubjectPublicKeyInfo for id-ecPublicKey on secp256k1, then the uncompressed point.
            let mut der = hex::decode("3056301006072a8648ce3d020106052b8104000a034200").unwrap();
            der.extend_from_slice(fake.key.verifying_key().to_encoded_point(false).as_bytes());
            json!({
                "KeyId": arn,
                "PublicKey": b64.encode(der),
                "KeySpec": "ECC_SECG_P256K1",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            })
        }
        "TrentService.Sign" => {
            if request["MessageType"] != "DIGEST" || request["SigningAlgorithm"] != "ECDSA_SHA_256" {
                return kms_error("ValidationException", "expected a DIGEST signed with ECDSA_SHA_256");
            }
            let digest = request["Message"].as_str().and_then(|m| b64.decode(m).ok()).unwrap_or_default();
            if digest.len() != 32 {
                return kms_error("ValidationException", "a DIGEST message is 32 bytes");
            }
            let signature: EcdsaSignature = fake.key.sign_prehash(&digest).unwrap();
            let mut calls = fake.calls.lock().unwrap();
            calls.signatures += 1;
            // KMS does not normalise s: every other answer carries the upper-half twin.
            let signature = if calls.signatures % 2 == 0 {
                calls.high_s += 1;
                EcdsaSignature::from_scalars(signature.r().to_bytes(), (-*signature.s()).to_bytes()).unwrap()
            } else {
                signature
            };
            json!({
                "KeyId": arn,
                "Signature": b64.encode(signature.to_der().as_bytes()),
                "SigningAlgorithm": "ECDSA_SHA_256",
            })
        }
        other => return kms_error("UnknownOperationException", &format!("unknown operation {other}")),
    };
    ([("content-type", "application/x-amz-json-1.1")], answer.to_string()).into_response()
}

fn kms_settings(endpoint: &str, key_id: &str) -> SignerSettings {
    SignerSettings {
        name: "hot".into(),
        chains: vec![31337],
        kind: SignerKind::AwsKms {
            key_id: key_id.into(),
            region: Some(REGION.into()),
            endpoint: Some(SecretUrl::new(endpoint.parse().unwrap())),
        },
    }
}

#[test]
fn transactions_signed_by_an_aws_kms_key_are_included() {
    // The AWS default chain reads credentials from the environment, which a test must not change under
    // other threads: the test runs again as a child process with the credentials in its environment.
    const CHILD: &str = "GEMGATE_TEST_KMS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        return runtime.block_on(run());
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "transactions_signed_by_an_aws_kms_key_are_included",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/gemgate-test/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/gemgate-test/credentials");
    for unset in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"]
    {
        child.env_remove(unset);
    }
    let status = child.status().unwrap();
    assert!(status.success(), "the test's run with AWS credentials in its environment failed: {status}");
}

async fn run() {
    let test = "transactions_signed_by_an_aws_kms_key_are_included";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let key: PrivateKeySigner = KMS_KEY.parse().unwrap();
    let fake = Fake { key: key.credential().clone(), calls: Arc::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(kms).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // An unknown key is refused at start with KMS's own words; no credential appears in the error.
    let missing = signers::open(&[kms_settings(&endpoint, "no-such-key")]).await.unwrap_err().to_string();
    assert!(missing.contains("NotFoundException") && missing.contains("no-such-key"), "{missing}");
    assert!(!missing.contains(SECRET_KEY) && !missing.contains(ACCESS_KEY), "{missing}");

    // A wrong secret key: the fake refuses the request signature, nothing is signed.
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            ACCESS_KEY,
            "not-the-secret",
            None,
            None,
            "test",
        ))
        .build();
    let impostor =
        KmsSigner::with_client("hot", aws_sdk_kms::Client::from_conf(config), KEY_ID).await.unwrap_err();
    assert!(impostor.to_string().contains("InvalidSignatureException"), "{impostor}");
    assert!(!impostor.to_string().contains("not-the-secret"), "{impostor}");
    assert_eq!(fake.calls.lock().unwrap().refused, ["the request signature does not match"]);

    // The configured signer, by alias: its address is the key's.
    let mut opened = signers::open(&[kms_settings(&endpoint, "alias/gemgate-hot")]).await.unwrap();
    let named = opened.remove("hot").unwrap();
    assert_eq!(named.address, key.address(), "the address from KMS's public key");

    let dir = tempfile::tempdir().unwrap();
    let options = TxmOptions { poll_interval: Duration::from_millis(100), ..TxmOptions::default() };
    let running = support::start(support::ledger(None, dir.path()).await, &anvil, named, options);
    let manager = running.manager.clone();

    let requests = 6;
    let mut ids = Vec::new();
    for i in 0..requests {
        let submit = Submit::transfer(
            &format!("kms-{i}"),
            "hot",
            anvil.chain_id(),
            anvil.accounts()[4],
            U256::from(1 + i),
        );
        ids.push(manager.submit(submit).await.unwrap().record().id.clone());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let record = manager.store.transaction(id).await.unwrap().unwrap();
            if [TxState::Included, TxState::Safe, TxState::Finalized].contains(&record.state) {
                break;
            }
            assert!(record.state != TxState::Failed, "{record:?}");
            assert!(tokio::time::Instant::now() < deadline, "not included: {record:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let sender: Address = key.address();
    assert_eq!(
        anvil.provider().get_transaction_count(sender).await.unwrap(),
        requests,
        "every transaction was sent from the KMS key's address"
    );
    {
        let calls = fake.calls.lock().unwrap();
        assert!(calls.signatures >= requests, "one KMS signature per transaction at least");
        assert!(calls.high_s >= 1, "an upper-half s from KMS was normalised and accepted by the node");
        assert_eq!(calls.refused.len(), 1, "only the impostor was refused: {:?}", calls.refused);
    }
    running.stop().await;
}
