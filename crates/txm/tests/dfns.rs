//! The DFNS signer against a local fake of the documented DFNS endpoints and challenge flow (DFNS itself
//! cannot be reached from here): our real client code runs the whole user action signing protocol, and the
//! fake checks every step (bearer token, challenge signed with the credential's Ed25519 key, the user
//! action token bound to the exact payload and path). A policy in the fake holds one request `Pending`,
//! then rejects it: the later nonces are not held hostage, the rejected one is filled with a no-op.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use ed25519_dalek::Verifier;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gemgate_domain::TxState;
use gemgate_testkit::{AnvilOptions, anvil_or_skip};
use gemgate_txm::dfns::{DfnsSettings, DfnsSigner};
use gemgate_txm::{NamedSigner, Submit, TxManager, TxmOptions};
use serde_json::{Value, json};

mod support;

const WALLET_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const TOKEN: &str = "service-account-token";
const WALLET: &str = "wa-test-1";
const CREDENTIAL: &str = "cr-test-1";
/// The fake's policy holds transfers of exactly this many wei for approval.
const HELD_VALUE: u64 = 13;

#[derive(Default)]
struct Fake {
    challenges: HashMap<String, (String, String, String)>, // id -> (challenge, payload, path)
    actions: HashMap<String, (String, String)>,            // user action token -> (payload, path)
    signatures: HashMap<String, Value>,                    // id -> request record
    by_external: HashMap<String, String>,
    next: u64,
    refused_steps: u64,
}

#[derive(Clone)]
struct FakeState {
    inner: Arc<Mutex<Fake>>,
    credential: ed25519_dalek::VerifyingKey,
    wallet: PrivateKeySigner,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn refuse(state: &FakeState, status: StatusCode, why: &str) -> (StatusCode, Json<Value>) {
    state.inner.lock().unwrap().refused_steps += 1;
    (status, Json(json!({"error": {"message": why}})))
}

async fn wallet(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) || id != WALLET {
        return refuse(&state, StatusCode::UNAUTHORIZED, "bad token or wallet");
    }
    (
        StatusCode::OK,
        Json(
            json!({"id": WALLET, "network": "Ethereum", "status": "Active", "address": state.wallet.address()}),
        ),
    )
}

async fn action_init(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return refuse(&state, StatusCode::UNAUTHORIZED, "bad token");
    }
    let mut fake = state.inner.lock().unwrap();
    fake.next += 1;
    let (id, challenge) =
        (format!("ch-{}", fake.next), format!("challenge-{}", keccak256(fake.next.to_be_bytes())));
    let payload = body["userActionPayload"].as_str().unwrap_or_default().to_string();
    let path = body["userActionHttpPath"].as_str().unwrap_or_default().to_string();
    fake.challenges.insert(id.clone(), (challenge.clone(), payload, path));
    (
        StatusCode::OK,
        Json(
            json!({"challenge": challenge, "challengeIdentifier": id, "allowCredentials": {"key": [{"id": CREDENTIAL}]}}),
        ),
    )
}

async fn action(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return refuse(&state, StatusCode::UNAUTHORIZED, "bad token");
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let assertion = &body["firstFactor"]["credentialAssertion"];
    let client_data = engine.decode(assertion["clientData"].as_str().unwrap_or_default()).unwrap_or_default();
    let signature = engine.decode(assertion["signature"].as_str().unwrap_or_default()).unwrap_or_default();
    let Some((challenge, payload, path)) = state
        .inner
        .lock()
        .unwrap()
        .challenges
        .remove(body["challengeIdentifier"].as_str().unwrap_or_default())
    else {
        return refuse(&state, StatusCode::UNAUTHORIZED, "unknown challenge");
    };
    let data: Value = serde_json::from_slice(&client_data).unwrap_or_default();
    let signed = ed25519_dalek::Signature::from_slice(&signature)
        .is_ok_and(|sig| state.credential.verify(&client_data, &sig).is_ok());
    if body["firstFactor"]["kind"] != "Key"
        || assertion["credId"] != CREDENTIAL
        || data["type"] != "key.get"
        || data["challenge"] != challenge.as_str()
        || !signed
    {
        return refuse(&state, StatusCode::UNAUTHORIZED, "the assertion does not verify");
    }
    let mut fake = state.inner.lock().unwrap();
    fake.next += 1;
    let token = format!("ua-{}", keccak256(format!("{challenge}:{}", fake.next)));
    fake.actions.insert(token.clone(), (payload, path));
    (StatusCode::OK, Json(json!({"userAction": token})))
}

async fn create_signature(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> (StatusCode, Json<Value>) {
    let path = format!("/wallets/{id}/signatures");
    let token =
        headers.get("x-dfns-useraction").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bound = state.inner.lock().unwrap().actions.remove(&token);
    if !authorized(&headers) || bound != Some((body.clone(), path)) {
        return refuse(&state, StatusCode::UNAUTHORIZED, "no user action for this payload and path");
    }
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    let external = request["externalId"].as_str().unwrap_or_default().to_string();
    let mut fake = state.inner.lock().unwrap();
    if let Some(existing) = fake.by_external.get(&external).and_then(|id| fake.signatures.get(id)) {
        return (StatusCode::OK, Json(existing.clone()));
    }
    let unsigned: Bytes = request["transaction"].as_str().unwrap_or_default().parse().unwrap_or_default();
    fake.next += 1;
    let signature_id = format!("sig-{}", fake.next);
    // The policy: hold transfers of HELD_VALUE wei (the value is in the RLP; decode it the honest way).
    let value = decode_value(&unsigned);
    let mut record =
        json!({"id": signature_id, "walletId": WALLET, "externalId": external, "transaction": unsigned});
    if value == U256::from(HELD_VALUE) {
        record["status"] = json!("Pending");
    } else {
        sign(&state.wallet, &unsigned, &mut record);
    }
    fake.signatures.insert(signature_id.clone(), record.clone());
    fake.by_external.insert(external, signature_id);
    (StatusCode::OK, Json(record))
}

fn decode_value(unsigned: &[u8]) -> U256 {
    use alloy::consensus::TxEip1559;
    use alloy::rlp::Decodable;
    match unsigned.split_first() {
        Some((2, mut rest)) => TxEip1559::decode(&mut rest).map(|tx| tx.value).unwrap_or_default(),
        _ => U256::ZERO,
    }
}

fn sign(wallet: &PrivateKeySigner, unsigned: &[u8], record: &mut Value) {
    let signature = wallet.sign_hash_sync(&keccak256(unsigned)).unwrap();
    record["status"] = json!("Signed");
    record["signature"] = json!({
        "r": format!("{:#x}", signature.r()),
        "s": format!("{:#x}", signature.s()),
        "recid": u8::from(signature.v()),
    });
}

async fn get_signature(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return refuse(&state, StatusCode::UNAUTHORIZED, "bad token");
    }
    match state.inner.lock().unwrap().signatures.get(&id) {
        Some(record) => (StatusCode::OK, Json(record.clone())),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": {"message": "no such signature"}}))),
    }
}

async fn start_fake(credential: ed25519_dalek::VerifyingKey) -> (String, FakeState) {
    let state = FakeState { inner: Arc::default(), credential, wallet: WALLET_KEY.parse().unwrap() };
    let app = Router::new()
        .route("/wallets/{id}", get(wallet))
        .route("/auth/action/init", post(action_init))
        .route("/auth/action", post(action))
        .route("/wallets/{id}/signatures", post(create_signature))
        .route("/wallets/{wallet}/signatures/{id}", get(get_signature))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn credential() -> (ed25519_dalek::SigningKey, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let pem = key.to_pkcs8_pem(Default::default()).unwrap().to_string();
    (key, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dfns_request_held_then_rejected_does_not_jam_later_nonces() {
    let test = "a_dfns_request_held_then_rejected_does_not_jam_later_nonces";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let (key, pem) = credential();
    let (url, fake) = start_fake(key.verifying_key()).await;

    // A wrong credential key is refused by the fake at the challenge step: nothing is signed.
    let wrong = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
        .to_pkcs8_pem(Default::default())
        .unwrap()
        .to_string();
    let settings = |pem: &str, token: &str| DfnsSettings {
        name: "custody".into(),
        base_url: url.parse().unwrap(),
        app_id: "ap-test".into(),
        wallet_id: WALLET.into(),
        token: token.into(),
        credential_id: CREDENTIAL.into(),
        private_key_pem: pem.into(),
    };
    let impostor = DfnsSigner::connect(settings(&wrong, TOKEN)).await.unwrap();
    let draft = gemgate_txm::draft::Draft::noop(
        anvil.chain_id(),
        0,
        impostor.address_of(),
        gemgate_txm::draft::Price::Legacy { gas_price: 1 },
    );
    let refused = draft.sign(&impostor, "custody", "probe").await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    assert!(!refused.to_string().contains(TOKEN), "the token never appears in errors");
    let bad_token = DfnsSigner::connect(settings(&pem, "wrong-token")).await.unwrap_err();
    assert!(!bad_token.to_string().contains("wrong-token"));

    let signer = DfnsSigner::connect(settings(&pem, TOKEN)).await.unwrap();
    let address = signer.address_of();
    assert_eq!(
        address,
        WALLET_KEY.parse::<PrivateKeySigner>().unwrap().address(),
        "the wallet's address from DFNS"
    );

    let dir = tempfile::tempdir().unwrap();
    let named = NamedSigner {
        name: "custody".into(),
        chains: vec![anvil.chain_id()],
        address,
        signer: Arc::new(signer),
    };
    let options = TxmOptions { poll_interval: Duration::from_millis(100), ..TxmOptions::default() };
    let running = support::start(support::ledger(None, dir.path()).await, &anvil, named, options);
    let manager = running.manager.clone();
    let submit = |value: u64, key: &str| {
        Submit::transfer(key, "custody", anvil.chain_id(), anvil.accounts()[3], U256::from(value))
    };
    let held = manager.submit(submit(HELD_VALUE, "held")).await.unwrap().record().id.clone();
    let later: Vec<String> = futures_ids(&manager, &submit).await;

    // The later requests are signed and sent while the first waits for approval.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let states = [&later[0], &later[1]].map(|id| id.clone());
        let mut sent = true;
        for id in &states {
            sent &= manager.store.transaction(id).await.unwrap().unwrap().state != TxState::Queued;
        }
        if sent {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "later requests never signed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        manager.store.transaction(&held).await.unwrap().unwrap().state,
        TxState::Queued,
        "held for approval"
    );

    // The approver rejects it: its nonce is filled with a no-op, and everything goes through.
    {
        let mut inner = fake.inner.lock().unwrap();
        let record =
            inner.signatures.values_mut().find(|r| r["status"] == "Pending").expect("a held request");
        record["status"] = json!("Rejected");
        record["reason"] = json!("denied by the approver");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let held_now = manager.store.transaction(&held).await.unwrap().unwrap();
        let mut done = held_now.state == TxState::Failed;
        for id in &later {
            done &= [TxState::Included, TxState::Safe, TxState::Finalized]
                .contains(&manager.store.transaction(id).await.unwrap().unwrap().state);
        }
        if done {
            assert!(held_now.error.unwrap().contains("denied by the approver"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "held: {held_now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = manager.store.attempts(&held).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.purpose.as_str()).collect::<Vec<_>>(),
        ["noop"],
        "only the no-op was ever signed"
    );
    use alloy::providers::Provider;
    assert_eq!(
        anvil.provider().get_transaction_count(address).await.unwrap(),
        3,
        "the no-op and both later requests"
    );
    assert_eq!(
        fake.inner.lock().unwrap().refused_steps,
        2,
        "only the impostor's and the bad token's calls were refused"
    );
    running.stop().await;
}

async fn futures_ids(manager: &TxManager, submit: &impl Fn(u64, &str) -> Submit) -> Vec<String> {
    let mut ids = Vec::new();
    for key in ["later-1", "later-2"] {
        ids.push(manager.submit(submit(1, key)).await.unwrap().record().id.clone());
    }
    ids
}

trait AddressOf {
    fn address_of(&self) -> Address;
}

impl AddressOf for DfnsSigner {
    fn address_of(&self) -> Address {
        gemgate_domain::ports::Signer::address(self)
    }
}
