//! `POST /v1/relay` from `gemgate run` against anvil with the sample `GemforceForwarder` (OpenZeppelin's
//! `ERC2771Forwarder`) and the Diamond's trusting `CarbonCreditFacet`: users who hold no ether retire their
//! carbon credits through the relayer, the effect (the credits of *their* token, which only `_msgSender()`
//! == the user may retire) is on chain and in the indexer's projection, and the transaction shows the
//! meta-request; the same signed request twice is one transaction; every refusal has its own stable code;
//! a quota of 20 holds against 50 concurrent requests on two API replicas sharing one Postgres; and a
//! relayer SIGKILLed while 200 requests arrive still includes each exactly once.
//!
//! The requests are signed by the test kit (`gemgate_testkit::relay`), independently of gemgate's relayer.

#[path = "../../../crates/store/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use gemgate_testkit::bindings::{CarbonCreditFacet, GemforceForwarder};
use gemgate_testkit::relay::{self, Domain, Meta};
use gemgate_testkit::{Anvil, AnvilOptions, Deployment, anvil_or_skip, deploy_gemforce};
use serde_json::{Value, json};
use sha2::Digest;
use support::{KillOnDrop, conforms, free_port, get, http, response_schema, try_http};

/// anvil's second account pays for relayed transactions ("sponsor"); the first owns the Diamond.
const SPONSOR_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const RELAY_KEY: &str = "relay-key";
const READ_KEY: &str = "read-key";
const GAS: u64 = 150_000;

fn config(
    dir: &std::path::Path,
    anvil: &Anvil,
    d: &Deployment,
    db_url: &str,
    listen: &str,
) -> std::path::PathBuf {
    let sha = |key: &str| hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let text = format!(
        r#"
[database]
url = "{db_url}"
[api]
listen = "{listen}"
public_reads = false
[[api.keys]]
name = "frontend"
key_sha256 = "{relay}"
scopes = ["read", "relay"]
[[api.keys]]
name = "dashboard"
key_sha256 = "{reader}"
scopes = ["read"]
[[chains]]
id = {chain}
rpc = ["{rpc}"]
poll_interval = "100ms"
[[contracts]]
name = "gemforce"
chain = {chain}
address = "{diamond}"
diamond = true
start_block = {start}
[[signers]]
name = "sponsor"
kind = "local"
key_env = "GEMGATE_TEST_SPONSOR_KEY"
chains = [{chain}]
[txm]
poll_interval = "100ms"
rebroadcast_after = "1s"
lease_ttl = "1s"

[[relayers]]
name = "carbon"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
[[relayers.allow]]
to = "gemforce"
functions = ["retireCarbonCredits(uint256,uint256)"]
[[relayers.allow]]
to = "{usdc}"
functions = ["transfer(address,uint256)"]
[relayers.per_user]
requests = 3
window = "1h"

[[relayers]]
name = "tight"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
[[relayers.allow]]
to = "gemforce"
[relayers.per_key]
requests = 20
window = "1h"

[[relayers]]
name = "spent"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
budget_wei = "1"
[[relayers.allow]]
to = "gemforce"

[[relayers]]
name = "batched"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
[[relayers.allow]]
to = "gemforce"
[relayers.batch]
max = 10
wait = "300ms"

[[relayers]]
name = "cheap"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
max_gas_price_gwei = 0.000000001
[[relayers.allow]]
to = "gemforce"

[[relayers]]
name = "gassy"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
[[relayers.allow]]
to = "gemforce"
[relayers.per_user]
gas_per_day = 1000

[[relayers]]
name = "spendy"
chain = {chain}
forwarder = "{forwarder}"
signer = "sponsor"
[[relayers.allow]]
to = "gemforce"
[relayers.per_key]
wei_per_day = "1"
"#,
        relay = sha(RELAY_KEY),
        reader = sha(READ_KEY),
        chain = anvil.chain_id(),
        rpc = anvil.endpoint(),
        diamond = d.diamond,
        start = d.start_block,
        forwarder = d.forwarder,
        usdc = d.usdc,
    );
    let path = dir.join("gemgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn gemgate(config: &std::path::Path, command: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["--log-filter", "warn", command, "--config", config.to_str().unwrap()])
        .env("GEMGATE_TEST_SPONSOR_KEY", SPONSOR_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn listening(listen: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "gemgate did not listen on {listen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(base: &str, key: &str, body: &Value) -> (u16, Value) {
    http("POST", &format!("{base}/v1/relay"), &[("Authorization", &format!("Bearer {key}"))], Some(body))
        .await
}

async fn transaction(base: &str, id: &str) -> Value {
    let url = format!("{base}/v1/transactions/{id}");
    http("GET", &url, &[("Authorization", &format!("Bearer {READ_KEY}"))], None).await.1
}

/// Waits until transaction `id` is included (or later) and returns it.
async fn included(base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = transaction(base, id).await;
        if matches!(body["state"].as_str(), Some("included" | "safe" | "finalized")) {
            return body;
        }
        assert!(!matches!(body["state"].as_str(), Some("failed" | "expired" | "replaced")), "{body}");
        assert!(Instant::now() < deadline, "not included in time: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A user without ether holding a token with `credits` carbon credits.
async fn user(provider: &DynProvider, d: &Deployment, credits: u64) -> (PrivateKeySigner, U256) {
    let user = PrivateKeySigner::random();
    let token =
        relay::mint_with_credits(provider, d.diamond, d.owner, user.address(), credits).await.unwrap();
    (user, token)
}

fn retire(d: &Deployment, token: U256, amount: u64, nonce: u64) -> Meta {
    Meta {
        to: d.diamond,
        data: relay::retire_call(token, amount),
        gas: GAS,
        nonce,
        deadline: relay::deadline_in(600),
    }
}

fn signed(relayer: &str, user: &PrivateKeySigner, domain: &Domain, meta: &Meta) -> Value {
    relay::body(relayer, user.address(), domain, meta, &relay::sign(user, domain, meta))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_requests_act_as_the_user_and_every_refusal_has_its_code() {
    let test = "relayed_requests_act_as_the_user_and_every_refusal_has_its_code";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let (alice, token) = user(&provider, &d, 1_000).await;
    let (bob, _) = user(&provider, &d, 1_000).await;
    let domain = Domain::gemforce(anvil.chain_id(), d.forwarder);

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let db_url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = config(dir.path(), &anvil, &d, &db_url, &listen);
    let _run = KillOnDrop(gemgate(&config, "run"));
    listening(&listen).await;
    let base = format!("http://{listen}");

    // Alice retires 10 credits of her token; the sponsor pays, she holds no ether.
    let first = retire(&d, token, 10, 0);
    let body = signed("carbon", &alice, &domain, &first);
    let (status, accepted) = post(&base, RELAY_KEY, &body).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["origin"], "relay");
    assert_eq!(accepted["to"], d.forwarder.to_string().to_lowercase());
    let alice_text = alice.address().to_string().to_lowercase();
    assert_eq!(accepted["relayed"][0]["from"], alice_text.as_str(), "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let done = included(&base, &id).await;
    assert_eq!(done["relayed"][0]["from"], alice_text.as_str(), "GET shows the meta-request: {done}");
    assert_eq!(done["relayed"][0]["to"], d.diamond.to_string().to_lowercase());
    assert_eq!(done["relayed"][0]["nonce"], "0");
    assert_eq!(done["receipt"]["status"], "success", "{done}");
    assert_eq!(provider.get_balance(alice.address()).await.unwrap(), U256::ZERO);
    let carbon = CarbonCreditFacet::new(d.diamond, provider.clone());
    assert_eq!(carbon.carbonCreditBalance(token).call().await.unwrap(), U256::from(990));
    let forwarder = GemforceForwarder::new(d.forwarder, provider.clone());
    assert_eq!(forwarder.nonces(alice.address()).call().await.unwrap(), U256::from(1));

    // The indexer's projection shows the retirement of Alice's token.
    let key = format!("{}:{}:{token}", anvil.chain_id(), d.diamond.to_checksum(None));
    let url = format!("{base}/v1/projections/carbon_credits/{key}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, row) =
            http("GET", &url, &[("Authorization", &format!("Bearer {READ_KEY}"))], None).await;
        if status == 200 && row["retired"] == "10" {
            assert_eq!(row["balance"], "990", "{row}");
            break;
        }
        assert!(Instant::now() < deadline, "the projection did not show the retirement: {status} {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same signed request again: the same transaction, even though its nonce is used now.
    let (status, again) = post(&base, RELAY_KEY, &body).await;
    assert_eq!((status, &again["id"]), (200, &json!(id)), "{again}");
    // The answers are what the OpenAPI document says.
    let (_, document) = get(&format!("{base}/v1/openapi.json")).await;
    conforms(&document, response_schema(&document, "post", "/v1/relay", 202), &accepted, "accepted").unwrap();
    conforms(&document, response_schema(&document, "post", "/v1/relay", 200), &again, "repeat").unwrap();
    let schema = response_schema(&document, "get", "/v1/transactions/{id}", 200);
    conforms(&document, schema, &done, "transaction").unwrap();

    // Every refusal, each with its own code, before anything is signed or spent.
    let sponsor = SPONSOR_KEY.parse::<PrivateKeySigner>().unwrap().address();
    let sponsor_nonce = provider.get_transaction_count(sponsor).await.unwrap();
    let mut cases: Vec<(&str, Value, u16, &str)> = Vec::new();
    cases.push((
        "used nonce",
        signed("carbon", &alice, &domain, &retire(&d, token, 5, 0)),
        422,
        "nonce_used",
    ));
    cases.push((
        "nonce ahead",
        signed("carbon", &alice, &domain, &retire(&d, token, 5, 7)),
        422,
        "nonce_ahead",
    ));
    let mut expired = retire(&d, token, 5, 1);
    expired.deadline = relay::deadline_in(0) - 10;
    cases.push(("expired", signed("carbon", &alice, &domain, &expired), 422, "expired"));
    let mut paying = signed("carbon", &alice, &domain, &retire(&d, token, 5, 1));
    paying["request"]["value"] = json!("1");
    cases.push(("value", paying, 422, "value_not_allowed"));
    let forged = retire(&d, token, 5, 1);
    let forged_sig = relay::sign_as(&bob, alice.address(), &domain, &forged);
    cases.push((
        "bad signature",
        relay::body("carbon", alice.address(), &domain, &forged, &forged_sig),
        422,
        "bad_signature",
    ));
    let high = retire(&d, token, 5, 1);
    let high_sig = high_s_twin(&relay::sign(&alice, &domain, &high));
    cases.push(("high s", relay::body("carbon", alice.address(), &domain, &high, &high_sig), 422, "high_s"));
    let other_name = Domain { name: "OtherForwarder".into(), ..domain.clone() };
    cases.push((
        "wrong domain",
        signed("carbon", &alice, &other_name, &retire(&d, token, 5, 1)),
        422,
        "wrong_domain",
    ));
    let other_chain = Domain { chain_id: 1, ..domain.clone() };
    let mut wrong_chain = signed("carbon", &alice, &other_chain, &retire(&d, token, 5, 1));
    wrong_chain["chain_id"] = json!(anvil.chain_id());
    cases.push(("wrong chain", wrong_chain, 422, "wrong_chain"));
    let transfer = Meta {
        to: d.usdc,
        data: Bytes::from([&[0xa9, 0x05, 0x9c, 0xbb][..], &[0u8; 64][..]].concat()),
        ..retire(&d, token, 5, 1)
    };
    cases.push((
        "target not trusting",
        signed("carbon", &alice, &domain, &transfer),
        422,
        "target_not_trusting",
    ));
    let init = Meta {
        data: Bytes::from([&[0x01, 0x02, 0x03, 0x04][..], &[0u8; 64][..]].concat()),
        ..retire(&d, token, 5, 1)
    };
    cases.push((
        "selector not allowed",
        signed("carbon", &alice, &domain, &init),
        422,
        "selector_not_allowed",
    ));
    let elsewhere = Meta { to: d.treasury, ..retire(&d, token, 5, 1) };
    cases.push((
        "target not allowed",
        signed("carbon", &alice, &domain, &elsewhere),
        422,
        "target_not_allowed",
    ));
    // Bob asks to retire Alice's credits: the facet sees Bob as the sender and reverts.
    cases.push((
        "simulation revert",
        signed("carbon", &bob, &domain, &retire(&d, token, 5, 0)),
        422,
        "simulation_reverted",
    ));
    cases.push((
        "budget spent",
        signed("spent", &alice, &domain, &retire(&d, token, 5, 1)),
        422,
        "budget_spent",
    ));
    cases.push((
        "gas price ceiling",
        signed("cheap", &alice, &domain, &retire(&d, token, 5, 1)),
        503,
        "gas_price_too_high",
    ));
    cases.push((
        "unknown relayer",
        signed("nobody", &alice, &domain, &retire(&d, token, 5, 1)),
        400,
        "unknown_relayer",
    ));
    let mut codes = std::collections::BTreeSet::new();
    for (case, body, status, code) in &cases {
        let (got, answer) = post(&base, RELAY_KEY, body).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (*status, Some(*code)), "{case}: {answer}");
        codes.insert(*code);
        conforms(&document, response_schema(&document, "post", "/v1/relay", *status), &answer, case).unwrap();
        if *code == "simulation_reverted" {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("NotTokenOwner"), "the facet's custom error, decoded: {message}");
            assert!(message.contains(&bob.address().to_string()), "with Bob as the sender: {message}");
        }
    }
    assert_eq!(codes.len(), cases.len(), "every refusal has its own code");
    // The daily gas and spend quotas: a request needs more than either allows.
    for relayer in ["gassy", "spendy"] {
        let (status, answer) =
            post(&base, RELAY_KEY, &signed(relayer, &alice, &domain, &retire(&d, token, 5, 1))).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (429, Some("quota_exceeded")),
            "{relayer}: {answer}"
        );
        let what = if relayer == "gassy" { "gas per day" } else { "spend per day" };
        assert!(answer["error"]["message"].as_str().unwrap().contains(what), "{answer}");
    }
    // A key without the relay scope, and no key.
    let (status, _) =
        post(&base, READ_KEY, &signed("carbon", &alice, &domain, &retire(&d, token, 5, 1))).await;
    assert_eq!(status, 403);
    let (status, _) = http("POST", &format!("{base}/v1/relay"), &[], Some(&json!({}))).await;
    assert_eq!(status, 401);
    let (status, malformed) = post(&base, RELAY_KEY, &json!({"chain_id": 31337, "request": {}})).await;
    assert_eq!((status, malformed["error"]["code"].as_str()), (400, Some("invalid_body")), "{malformed}");
    assert_eq!(
        provider.get_transaction_count(sponsor).await.unwrap(),
        sponsor_nonce,
        "no refused request cost the sponsor a transaction"
    );

    // Alice's per-user quota is 3 requests an hour: her second and third pass, the fourth waits.
    for nonce in 1..=2 {
        let (status, answer) =
            post(&base, RELAY_KEY, &signed("carbon", &alice, &domain, &retire(&d, token, 1, nonce))).await;
        assert_eq!(status, 202, "{answer}");
        included(&base, answer["id"].as_str().unwrap()).await;
    }
    let url = format!("{base}/v1/relay");
    let auth = format!("Bearer {RELAY_KEY}");
    let answer = try_http(
        "POST",
        &url,
        &[("Authorization", &auth)],
        Some(&signed("carbon", &alice, &domain, &retire(&d, token, 1, 3))),
    )
    .await
    .unwrap();
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{answer:?}"
    );
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After is the rest of the window: {retry}");
    assert_eq!(carbon.carbonCreditBalance(token).call().await.unwrap(), U256::from(988));

    // The relay counters by outcome.
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains(r#"gemgate_relay_requests_total{relayer="carbon",outcome="accepted"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gemgate_relay_requests_total{relayer="carbon",outcome="repeat"} 1"#));
}

/// The same signature with `s` replaced by `n - s` and the parity flipped: valid for the curve, refused as
/// malleable.
fn high_s_twin(signature: &Bytes) -> Bytes {
    let order =
        U256::from_str_radix("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16).unwrap();
    let s = U256::from_be_slice(&signature[32..64]);
    let mut twin = signature.to_vec();
    twin[32..64].copy_from_slice(&(order - s).to_be_bytes::<32>());
    twin[64] = if signature[64] == 27 { 28 } else { 27 };
    twin.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_quota_of_20_holds_against_50_concurrent_requests_on_two_replicas() {
    let test = "a_key_quota_of_20_holds_against_50_concurrent_requests_on_two_replicas";
    let Some(db) = common::postgres(test, "relayquota").await else { return };
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let domain = Domain::gemforce(anvil.chain_id(), d.forwarder);
    let mut users = Vec::new();
    for _ in 0..50 {
        users.push(user(&provider, &d, 100).await);
    }

    let dir = tempfile::tempdir().unwrap();
    let listens = [format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())];
    let run_config = config(dir.path(), &anvil, &d, &db.url, &listens[0]);
    let _run = KillOnDrop(gemgate(&run_config, "run"));
    listening(&listens[0]).await;
    let serve_dir = dir.path().join("replica");
    std::fs::create_dir_all(&serve_dir).unwrap();
    let serve_config = config(&serve_dir, &anvil, &d, &db.url, &listens[1]);
    let _serve = KillOnDrop(gemgate(&serve_config, "serve"));
    listening(&listens[1]).await;

    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, (user, token))| {
            let base = format!("http://{}", listens[i % 2]);
            let body = signed("tight", user, &domain, &retire(&d, *token, 1, 0));
            tokio::spawn(async move { post(&base, RELAY_KEY, &body).await })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        match status {
            202 => accepted.push(body["id"].as_str().unwrap().to_string()),
            429 => {
                assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
                refused.push(i);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((accepted.len(), refused.len()), (20, 30), "exactly the quota passes, across both replicas");
    let base = format!("http://{}", listens[0]);
    for id in &accepted {
        included(&base, id).await;
    }

    // The count is in the database: a replica started afresh still refuses.
    drop(_serve);
    let _serve = KillOnDrop(gemgate(&serve_config, "serve"));
    listening(&listens[1]).await;
    let (user, token) = &users[refused[0]];
    let body = signed("tight", user, &domain, &retire(&d, *token, 1, 0));
    let (status, answer) = post(&format!("http://{}", listens[1]), RELAY_KEY, &body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{answer}");
    drop(_serve);
    drop(_run);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayer_killed_while_200_requests_arrive_includes_each_exactly_once() {
    let test = "a_relayer_killed_while_200_requests_arrive_includes_each_exactly_once";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let domain = Domain::gemforce(anvil.chain_id(), d.forwarder);
    let mut bodies = Vec::new();
    let mut users = Vec::new();
    for _ in 0..200 {
        let (user, token) = user(&provider, &d, 100).await;
        bodies.push(signed("carbon", &user, &domain, &retire(&d, token, 7, 0)));
        users.push((user.address(), token));
    }

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let db_url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = config(dir.path(), &anvil, &d, &db_url, &listen);
    let mut run = KillOnDrop(gemgate(&config, "run"));
    listening(&listen).await;
    let base = format!("http://{listen}");

    // 20 clients send the 200 requests, each retrying until it has an answer; the relayer is killed once
    // a third have been answered, and started again.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let retried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies.clone()));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (queue, answered, retried, base) =
                (queue.clone(), answered.clone(), retried.clone(), base.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let Some(body) = queue.lock().unwrap().pop() else { return ids };
                    let auth = format!("Bearer {RELAY_KEY}");
                    let deadline = Instant::now() + Duration::from_secs(90);
                    loop {
                        let answer = try_http(
                            "POST",
                            &format!("{base}/v1/relay"),
                            &[("Authorization", &auth)],
                            Some(&body),
                        )
                        .await;
                        match answer {
                            Ok(a) if a.status == 202 || a.status == 200 => {
                                ids.push(a.body["id"].as_str().unwrap().to_string());
                                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                break;
                            }
                            // Down, or a request cut short by the kill: send the same signed request again.
                            Err(_) => {
                                retried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            Ok(a) if a.status >= 500 => {
                                retried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            Ok(a) => panic!("refused: {} {}", a.status, a.body),
                        }
                        assert!(Instant::now() < deadline, "no answer in time");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 70 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let before_kill = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before_kill < 200, "killed while requests were still arriving ({before_kill} answered)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _again = KillOnDrop(gemgate(&config, "run"));
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await.unwrap());
    }
    assert_eq!(ids.len(), 200);
    assert!(
        retried.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "some clients found the relayer down and retried"
    );
    for id in &ids {
        let done = included(&base, id).await;
        assert_eq!(done["receipt"]["status"], "success", "{done}");
    }

    // Each user's request ran exactly once: its forwarder nonce is 1 and 7 credits are gone; and the
    // sponsor sent exactly one transaction per request.
    let forwarder = GemforceForwarder::new(d.forwarder, provider.clone());
    let carbon = CarbonCreditFacet::new(d.diamond, provider.clone());
    for (address, token) in &users {
        assert_eq!(forwarder.nonces(*address).call().await.unwrap(), U256::from(1));
        assert_eq!(carbon.carbonCreditBalance(*token).call().await.unwrap(), U256::from(93));
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 200, "one transaction per signed request");
    let sponsor = SPONSOR_KEY.parse::<PrivateKeySigner>().unwrap().address();
    assert_eq!(provider.get_transaction_count(sponsor).await.unwrap(), 200, "no transaction sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_together_go_in_one_execute_batch_and_a_failing_member_sinks_no_other() {
    let test = "requests_waiting_together_go_in_one_execute_batch_and_a_failing_member_sinks_no_other";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    let domain = Domain::gemforce(anvil.chain_id(), d.forwarder);
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(user(&provider, &d, 100).await);
    }

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let db_url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = config(dir.path(), &anvil, &d, &db_url, &listen);
    let _run = KillOnDrop(gemgate(&config, "run"));
    listening(&listen).await;
    let base = format!("http://{listen}");

    // Blocks wait until the test mines one, so the batch is still pending when the first member's
    // deadline passes: at execution the forwarder finds that member expired and skips it.
    let _: () = provider.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let soon = relay::deadline_in(3);
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, (user, token))| {
            let mut meta = retire(&d, *token, 10, 0);
            if i == 0 {
                meta.deadline = soon;
            }
            let (base, body) = (base.clone(), signed("batched", user, &domain, &meta));
            tokio::spawn(async move { post(&base, RELAY_KEY, &body).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["relayed"].as_array().unwrap().len(), 5, "one transaction carries all five: {body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while transaction(&base, &id).await["state"] != "submitted" {
        assert!(Instant::now() < deadline, "the batch was not broadcast");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while relay::deadline_in(0) <= soon + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _: () = provider.raw_request("evm_setAutomine".into(), (true,)).await.unwrap();
    let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let done = included(&base, &id).await;
    assert_eq!(done["receipt"]["status"], "success", "the batch itself succeeds: {done}");
    assert_eq!(done["relayed"].as_array().unwrap().len(), 5);

    let forwarder = GemforceForwarder::new(d.forwarder, provider.clone());
    let carbon = CarbonCreditFacet::new(d.diamond, provider.clone());
    for (i, (user, token)) in users.iter().enumerate() {
        let (nonce, credits) = if i == 0 { (0, 100) } else { (1, 90) };
        assert_eq!(forwarder.nonces(user.address()).call().await.unwrap(), U256::from(nonce), "user {i}");
        assert_eq!(carbon.carbonCreditBalance(*token).call().await.unwrap(), U256::from(credits), "user {i}");
    }
}
