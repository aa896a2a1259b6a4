//! The transaction manager as users run it: `gemgate txm` SIGKILLed at random points between nonce
//! allocation, signing and broadcast still gets every request included exactly once with no gap (SQLite and
//! Postgres); `gemgate run` serves the transaction API with API keys and scopes, idempotency keys, input
//! validation, and client-signed broadcast with its refusals (wrong chain, bad signature, nonce below the
//! chain's, not allowlisted); the fee cap, the raw fee limit, speed-up and cancel through the API; the
//! transaction list and sinks filtered by message kind.

#[path = "../../../crates/store/tests/common/mod.rs"]
mod common;
#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use gemgate_chain::{RetryPolicy, TxRpc};
use gemgate_domain::TxState;
use gemgate_domain::ports::Broadcaster;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::{Anvil, AnvilOptions, SplitMix64, anvil_or_skip};
use gemgate_txm::draft::{Draft, Price, Signing};
use gemgate_txm::fees::Fees;
use gemgate_txm::signers::LocalSigner;
use gemgate_txm::{NamedSigner, Submit, TxManager, TxmOptions};
use sha2::Digest;
use support::{KillOnDrop, free_port, http};

/// anvil's first account signs for gemgate ("ops"); the second is a client that signs its own.
const OPS_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const CLIENT_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const DONE: [TxState; 3] = [TxState::Included, TxState::Safe, TxState::Finalized];

fn config(dir: &std::path::Path, anvil: &Anvil, db_url: &str, listen: &str) -> std::path::PathBuf {
    let sha = |key: &str| hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let text = format!(
        r#"
[database]
url = "{db_url}"

[api]
listen = "{listen}"
public_reads = false

[[api.keys]]
name = "backend"
key_sha256 = "{backend}"
scopes = ["read", "transact"]

[[api.keys]]
name = "dashboard"
key_sha256 = "{reader}"
scopes = ["read"]

[[chains]]
id = {chain}
rpc = ["{rpc}"]

[[signers]]
name = "ops"
kind = "local"
key_env = "GEMGATE_TEST_OPS_KEY"
chains = [{chain}]

[txm]
poll_interval = "100ms"
rebroadcast_after = "1s"
lease_ttl = "300ms"

[[txm.raw_allow]]
to = "{allowed}"
"#,
        backend = sha("backend-key"),
        reader = sha("reader-key"),
        chain = anvil.chain_id(),
        rpc = anvil.endpoint(),
        allowed = anvil.accounts()[2],
    );
    let path = dir.join("gemgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn gemgate(config: &std::path::Path, command: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["--log-filter", "warn", command, "--config", config.to_str().unwrap()])
        .env("GEMGATE_TEST_OPS_KEY", OPS_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A manager over the same database that only accepts requests (the workers are the child process's).
async fn front_door(anvil: &Anvil, db_url: &str) -> (TxManager, SqlStore) {
    let store = SqlStore::connect(db_url, 4, ProjectionSet::default()).await.unwrap();
    store.migrate().await.unwrap();
    let rpc: Arc<dyn Broadcaster> = Arc::new(TxRpc::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse().unwrap(), "anvil".into())],
        RetryPolicy::default(),
    ));
    let local = LocalSigner::from_hex("ops", OPS_KEY).unwrap();
    let address = gemgate_domain::ports::Signer::address(&local);
    let signer =
        NamedSigner { name: "ops".into(), chains: vec![anvil.chain_id()], address, signer: Arc::new(local) };
    let manager = TxManager::new(
        Arc::new(store.clone()),
        HashMap::from([(anvil.chain_id(), rpc)]),
        HashMap::from([("ops".to_string(), signer)]),
        TxmOptions::default(),
    );
    (manager, store)
}

const REQUESTS: usize = 300;
const KILLS: u32 = 10;

async fn killed_txm(test: &str, db_url: Option<&str>) {
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("txm.db").display()));
    let (manager, store) = front_door(&anvil, &url).await;
    let manager = Arc::new(manager);
    let config = config(dir.path(), &anvil, &url, "127.0.0.1:0");

    // Requests arrive all along (10 every 0.3 s), while the workers' process is killed over and over.
    let submitter = {
        let manager = manager.clone();
        let to = anvil.accounts()[2];
        let chain_id = anvil.chain_id();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for wave in 0..REQUESTS / 10 {
                let batch: Vec<_> = (0..10)
                    .map(|i| {
                        let manager = manager.clone();
                        tokio::spawn(async move {
                            let key = format!("w{wave}-{i}");
                            let mut request = Submit::transfer(&key, "ops", chain_id, to, U256::from(1u64));
                            request.gas_limit = Some(21_000);
                            manager.submit(request).await.unwrap().record().id.clone()
                        })
                    })
                    .collect();
                for task in batch {
                    ids.push(task.await.unwrap());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            ids
        })
    };
    let mut rng = SplitMix64::new(0x7A3);
    let mut child = gemgate(&config, "txm");
    // A kill counts when it stopped a process that had been moving requests along, with work left.
    let progress = |states: &[(String, u64)]| -> (u64, u64) {
        let count = |names: &[&str]| {
            states.iter().filter(|(s, _)| names.contains(&s.as_str())).map(|(_, n)| n).sum::<u64>()
        };
        (
            count(&["signed", "submitted", "included", "safe", "finalized"]),
            count(&["queued", "signed", "submitted"]),
        )
    };
    let mut moved_before = 0;
    let mut mid_stream = 0;
    for _ in 0..KILLS {
        // Each kill waits until this process has moved requests along while more are waiting, then strikes a
        // few milliseconds later: somewhere between allocation, signing, storing and broadcast.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut working = false;
        while tokio::time::Instant::now() < deadline {
            let (moved, pending) = progress(&manager.store.transaction_states().await.unwrap());
            if moved > moved_before && pending > 0 {
                working = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 60))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        if working {
            mid_stream += 1;
        }
        moved_before = progress(&manager.store.transaction_states().await.unwrap()).0;
        child = gemgate(&config, "txm");
    }
    let ids = submitter.await.unwrap();
    assert_eq!(ids.len(), REQUESTS);
    assert!(mid_stream >= 5, "only {mid_stream} of {KILLS} kills landed while work was pending");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut hashes = BTreeSet::new();
    let mut nonces = BTreeSet::new();
    for id in &ids {
        let record = loop {
            let record = manager.store.transaction(id).await.unwrap().unwrap();
            if DONE.contains(&record.state) {
                break record;
            }
            assert!(!record.state.is_terminal(), "{id} ended {:?}: {:?}", record.state, record.error);
            assert!(tokio::time::Instant::now() < deadline, "{id} still {:?}", record.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        nonces.insert(record.nonce);
        hashes.insert(record.tx_hash.unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(nonces.into_iter().collect::<Vec<_>>(), (0..REQUESTS as u64).collect::<Vec<_>>(), "no gap");
    assert_eq!(hashes.len(), REQUESTS, "one transaction per request");
    let sender = manager.signers["ops"].address;
    let on_chain = anvil.provider().get_transaction_count(sender).await.unwrap();
    assert_eq!(on_chain, REQUESTS as u64, "exactly {REQUESTS} transactions on chain: each request once");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txm_killed_at_random_points_includes_every_request_once_on_sqlite() {
    killed_txm("txm_killed_at_random_points_includes_every_request_once_on_sqlite", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txm_killed_at_random_points_includes_every_request_once_on_postgres() {
    let test = "txm_killed_at_random_points_includes_every_request_once_on_postgres";
    let Some(db) = common::postgres(test, "txm_kill").await else { return };
    killed_txm(test, Some(&db.url)).await;
    db.drop().await;
}

/// A transaction the client signs itself.
async fn client_signed(chain_id: u64, nonce: u64, to: Address) -> Bytes {
    let signer = LocalSigner::from_hex("client", CLIENT_KEY).unwrap();
    let draft = Draft {
        chain_id,
        nonce,
        to: Some(to),
        value: U256::from(7u64),
        data: Bytes::new(),
        gas_limit: 21_000,
        price: Price::Eip1559(Fees {
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        }),
    };
    match draft.sign(&signer, "client", "k").await.unwrap() {
        Signing::Signed(signed) => signed.raw,
        Signing::Pending { .. } => unreachable!("a local key never holds"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_api_checks_keys_and_input_and_tracks_requests_and_client_signed_transactions() {
    let test = "the_transaction_api_checks_keys_and_input_and_tracks_requests_and_client_signed_transactions";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let config = config(dir.path(), &anvil, &url, &listen);
    let _service = KillOnDrop(gemgate(&config, "run"));
    let base = format!("http://{listen}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the API never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backend = [("Authorization", "Bearer backend-key"), ("Idempotency-Key", "order-1")];
    let to = anvil.accounts()[2];
    let body = serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "value": "1000"});
    let create = format!("{base}/v1/transactions");

    // Keys and scopes.
    assert_eq!(http("POST", &create, &[], Some(&body)).await.0, 401, "no key");
    assert_eq!(
        http("POST", &create, &[("Authorization", "Bearer wrong")], Some(&body)).await.0,
        401,
        "unknown key"
    );
    assert_eq!(
        http("POST", &create, &[("Authorization", "Bearer reader-key")], Some(&body)).await.0,
        403,
        "read scope only"
    );

    // Accepted once; the same key and body answer with the same request; another body conflicts.
    let (status, first) = http("POST", &create, &backend, Some(&body)).await;
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["state"], "queued");
    let (status, again) = http("POST", &create, &backend, Some(&body)).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));
    let other = serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "value": "2000"});
    let (status, conflict) = http("POST", &create, &backend, Some(&other)).await;
    assert_eq!(status, 409, "{conflict}");

    // Input that is wrong is refused with what is wrong.
    let auth = [("Authorization", "Bearer backend-key")];
    for (bad, says) in [
        (serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": "0x12"}), "to"),
        (serde_json::json!({"signer": "nobody", "chain_id": anvil.chain_id(), "to": to}), "unknown signer"),
        (serde_json::json!({"signer": "ops", "chain_id": 5, "to": to}), "chain 5"),
        (
            serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "data": "0xzz"}),
            "data",
        ),
        (
            serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "value": "-1"}),
            "value",
        ),
        (
            serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "speed": "warp"}),
            "speed",
        ),
        (
            serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, answer) = http("POST", &create, &auth, Some(&bad)).await;
        assert_eq!(status, 400, "{bad} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{bad}: {message:?} should mention {says:?}");
        assert!(!message.contains(OPS_KEY.trim_start_matches("0x")), "no key material in errors");
    }

    // The request goes all the way; GET shows its attempts and confirmations.
    let get = format!("{base}/v1/transactions/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let included = loop {
        let (status, now) = http("GET", &get, &[("Authorization", "Bearer reader-key")], None).await;
        assert_eq!(status, 200, "{now}");
        if ["included", "safe", "finalized"].contains(&now["state"].as_str().unwrap()) {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(included["attempts"][0]["hash"], included["tx_hash"]);
    assert!(included["confirmations"].as_u64().unwrap() >= 1);
    assert_eq!(included["receipt"]["status"], "success");
    let (status, _) = http("POST", &format!("{get}/cancel"), &auth, None).await;
    assert_eq!(status, 409, "an included transaction can no longer be cancelled");
    assert_eq!(http("GET", &format!("{base}/v1/transactions/nope"), &auth, None).await.0, 404);

    // Client-signed transactions: refused for the wrong chain, a bad signature, a used nonce, a target
    // outside the allowlist; accepted once otherwise, and tracked to inclusion.
    let raw_url = format!("{base}/v1/transactions/raw");
    let raw = |bytes: &Bytes| serde_json::json!({"raw": bytes.to_string()});
    let client = anvil.accounts()[1];
    let provider = anvil.provider();
    let used = alloy::rpc::types::TransactionRequest::default()
        .with_from(client)
        .with_to(to)
        .with_value(U256::from(1u64));
    provider.send_transaction(used).await.unwrap().get_receipt().await.unwrap();

    let wrong_chain = client_signed(999, 1, to).await;
    let mut bad_signature = client_signed(anvil.chain_id(), 1, to).await.to_vec();
    let len = bad_signature.len();
    bad_signature[len - 65..len - 33].fill(0xff); // r above the curve order: recovers to no one
    let below = client_signed(anvil.chain_id(), 0, to).await;
    let elsewhere = client_signed(anvil.chain_id(), 1, anvil.accounts()[3]).await;
    for (bytes, says) in [
        (wrong_chain, "chain 999"),
        (Bytes::from(bad_signature), "signature"),
        (below, "nonce 0 is below"),
        (elsewhere, "allowlist"),
    ] {
        let (status, answer) = http("POST", &raw_url, &auth, Some(&raw(&bytes))).await;
        assert!((400..500).contains(&status), "{says}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} should mention {says:?}");
    }
    let good = client_signed(anvil.chain_id(), 1, to).await;
    let (status, tracked) = http("POST", &raw_url, &auth, Some(&raw(&good))).await;
    assert_eq!(status, 202, "{tracked}");
    let (status, same) = http("POST", &raw_url, &auth, Some(&raw(&good))).await;
    assert_eq!((status, &same["id"]), (200, &tracked["id"]), "the same bytes: the same record");
    let get = format!("{base}/v1/transactions/{}", tracked["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, now) = http("GET", &get, &auth, None).await;
        if ["included", "safe", "finalized"].contains(&now["state"].as_str().unwrap()) {
            assert_eq!(now["origin"], "raw");
            assert_eq!(now["sender"].as_str().unwrap(), format!("{client:#x}"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(provider.get_transaction_count(client).await.unwrap(), 2);
}

/// Redis, where the filtered-sink test delivers (`GEMGATE_TEST_REDIS_URL`, default the local server).
fn redis_url() -> String {
    std::env::var("GEMGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Every entry of a Redis stream: (kind, body).
async fn stream_entries(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<(String, serde_json::Value)> {
    type Entries = Vec<(String, Vec<(String, String)>)>;
    let entries: Entries =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(connection).await.unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let field =
                |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
            (field("kind"), serde_json::from_str(&field("body")).unwrap_or_default())
        })
        .collect()
}

/// `GET /v1/transactions` lists requests newest first with filters and cursor pages; sinks whose `events`
/// name message kinds (`transaction.*`, `transaction.included`, `webhook.gemforce`) receive those and
/// nothing else, through `gemgate run` into Redis Streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_listed_and_sinks_filter_by_message_kind() {
    let test = "transactions_are_listed_and_sinks_filter_by_message_kind";
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) if gemgate_testkit::under_ci() => panic!("Redis unreachable under CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED {test}: Redis unreachable ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("sqlite://{}", dir.path().join("list.db").display());
    let config = config(dir.path(), &anvil, &url, &listen);
    let tag = format!("{}-{}", std::process::id(), free_port());
    let streams = [format!("gg-all-tx-{tag}"), format!("gg-included-{tag}"), format!("gg-webhooks-{tag}")];
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "public_reads = false",
        "public_reads = false\ngemforce_webhook_secret_env = \"GEMGATE_TEST_HOOK\"",
    );
    for (stream, events) in
        streams.iter().zip([r#"["transaction.*"]"#, r#"["transaction.included"]"#, r#"["webhook.gemforce"]"#])
    {
        text.push_str(&format!(
            "\n[[sinks]]\nname = \"{stream}\"\nkind = \"redis\"\nurl = \"{}\"\nstream = \"{stream}\"\nevents = {events}\n",
            redis_url()
        ));
    }
    std::fs::write(&config, text).unwrap();
    let _service = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "run", "--config", config.to_str().unwrap()])
            .env("GEMGATE_TEST_OPS_KEY", OPS_KEY)
            .env("GEMGATE_TEST_HOOK", "hook-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{listen}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the API never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auth = [("Authorization", "Bearer backend-key")];
    let to = anvil.accounts()[2];
    let mut ids = Vec::new();
    for value in 1..=5u64 {
        let body = serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "value": value.to_string()});
        let (status, answer) = http("POST", &format!("{base}/v1/transactions"), &auth, Some(&body)).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_string());
    }
    // A signed Gemforce webhook, for the webhook sink.
    let hook = serde_json::json!({"id": "evt-1", "type": "deal.updated"}).to_string();
    let signature = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(hook.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let hook_body: serde_json::Value = serde_json::from_str(&hook).unwrap();
    let (status, _) = http(
        "POST",
        &format!("{base}/v1/webhooks/gemforce"),
        &[("X-Gemforce-Signature", &signature)],
        Some(&hook_body),
    )
    .await;
    assert_eq!(status, 202);

    // Every request reaches inclusion.
    let list = |query: &str| {
        let url = format!("{base}/v1/transactions{query}");
        async move { http("GET", &url, &[("Authorization", "Bearer reader-key")], None).await }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = list("?state=included").await;
        assert_eq!(status, 200, "{page}");
        let (_, safe) = list("?state=safe").await;
        let (_, finalized) = list("?state=finalized").await;
        let done = [&page, &safe, &finalized]
            .iter()
            .map(|p| p["transactions"].as_array().unwrap().len())
            .sum::<usize>();
        if done == ids.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all included: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Newest first, two a page, every request once.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let (status, page) = list(&query).await;
        assert_eq!(status, 200, "{page}");
        let items = page["transactions"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert!(item["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{item}");
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&after={next}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "pages cover every request once, newest (highest nonce) first");
    let (_, by_signer) = list(&format!("?signer=ops&chain_id={}", anvil.chain_id())).await;
    assert_eq!(by_signer["transactions"].as_array().unwrap().len(), 5);
    let (_, other_chain) = list("?chain_id=5").await;
    assert!(other_chain["transactions"].as_array().unwrap().is_empty());
    let (_, nobody) = list("?signer=nobody").await;
    assert!(nobody["transactions"].as_array().unwrap().is_empty());
    let (_, queued) = list("?state=queued").await;
    assert!(queued["transactions"].as_array().unwrap().is_empty());
    let (_, future) = list("?from_time=2999-01-01T00:00:00Z").await;
    assert!(future["transactions"].as_array().unwrap().is_empty());
    let (_, past) = list("?from_time=2020-01-01T00:00:00Z").await;
    assert_eq!(past["transactions"].as_array().unwrap().len(), 5);
    for (bad, says) in [
        ("?state=mined", "state"),
        ("?from_time=yesterday", "from_time"),
        ("?after=zz", "after"),
        ("?limit=0", "limit"),
        ("?colour=red", "colour"),
    ] {
        let (status, answer) = list(bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{bad}: {answer}");
    }
    assert_eq!(
        http("GET", &format!("{base}/v1/transactions"), &[], None).await.0,
        401,
        "reads need a key here"
    );

    // The sinks got their kinds and nothing else.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (all, included, webhooks) = loop {
        let all = stream_entries(&mut connection, &streams[0]).await;
        let included = stream_entries(&mut connection, &streams[1]).await;
        let webhooks = stream_entries(&mut connection, &streams[2]).await;
        if included.len() >= ids.len() && !webhooks.is_empty() {
            break (all, included, webhooks);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sinks incomplete: {} included, {} webhooks",
            included.len(),
            webhooks.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(all.iter().all(|(kind, _)| kind.starts_with("transaction.")), "{all:?}");
    for state in ["queued", "signed", "submitted", "included"] {
        let kind = format!("transaction.{state}");
        assert_eq!(all.iter().filter(|(k, _)| *k == kind).count(), ids.len(), "{kind} once per request");
    }
    assert!(included.iter().all(|(kind, _)| kind == "transaction.included"), "{included:?}");
    let mut included_ids: Vec<String> =
        included.iter().map(|(_, b)| b["id"].as_str().unwrap().to_string()).collect();
    included_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(included_ids, expected);
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    assert_eq!(webhooks[0].0, "webhook.gemforce");
    assert_eq!(webhooks[0].1["id"], "evt-1");
    let mut cleanup = redis::cmd("DEL");
    for stream in &streams {
        cleanup.arg(stream);
    }
    let _: Result<(), _> = cleanup.query_async(&mut connection).await;
}

/// Waits until `GET /v1/transactions/{id}` satisfies `done`; returns the body.
async fn until_body(
    base: &str,
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let url = format!("{base}/v1/transactions/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http("GET", &url, &[("Authorization", "Bearer reader-key")], None).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The fee rules as the README states them, through `gemgate run`: a request above `txm.max_fee_gwei` is a
/// 422; a client-signed one paying more than `txm.raw_max_fee_multiple` times the market is a 422; on a node
/// that does not mine by itself, `speed-up` re-prices a pending transaction at once (a second attempt with
/// higher fees, the one that is included) and `cancel` fills its nonce with the zero-value no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_caps_speed_up_and_cancel_hold_through_the_api() {
    let test = "fee_caps_speed_up_and_cancel_hold_through_the_api";
    let options = AnvilOptions { extra_args: vec!["--no-mining".into()], ..AnvilOptions::default() };
    let Some(anvil) = anvil_or_skip(test, options).await.unwrap() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fees.db").display());
    let auth = [("Authorization", "Bearer backend-key")];
    let to = anvil.accounts()[2];
    let body = serde_json::json!({"signer": "ops", "chain_id": anvil.chain_id(), "to": to, "value": "1"});
    let serve = |extra: &str| {
        let listen = format!("127.0.0.1:{}", free_port());
        let config = config(dir.path(), &anvil, &url, &listen);
        let text = std::fs::read_to_string(&config).unwrap().replace("[txm]\n", &format!("[txm]\n{extra}\n"));
        std::fs::write(&config, text).unwrap();
        (listen, KillOnDrop(gemgate(&config, "run")))
    };
    let up = |listen: String| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&listen).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "the API never came up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        format!("http://{listen}")
    };

    // A cap below anything the market asks: every new request is refused, and says why.
    let (listen, capped) = serve("max_fee_gwei = 0.001\nraw_max_fee_multiple = 1");
    let base = up(listen).await;
    let (status, answer) = http("POST", &format!("{base}/v1/transactions"), &auth, Some(&body)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("above the configured limit"), "{answer}");
    // A client-signed transaction offering 10 gwei, more than once the market's fee cap.
    let raw = serde_json::json!({"raw": client_signed(anvil.chain_id(), 0, to).await.to_string()});
    let (status, answer) = http("POST", &format!("{base}/v1/transactions/raw"), &auth, Some(&raw)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("times the market"), "{answer}");
    drop(capped);

    // No cap: a request goes out and waits in the pool; speed-up re-prices it now.
    let (listen, _service) = serve("");
    let base = up(listen).await;
    let (status, first) = http("POST", &format!("{base}/v1/transactions"), &auth, Some(&body)).await;
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    until_body(&base, &id, "submitted", |b| b["state"] == "submitted").await;
    let (status, answer) = http("POST", &format!("{base}/v1/transactions/{id}/speed-up"), &auth, None).await;
    assert_eq!(status, 200, "{answer}");
    let repriced = until_body(&base, &id, "a second attempt, sent", |b| {
        b["attempts"].as_array().is_some_and(|a| a.len() >= 2 && a[1]["sent"] == true)
    })
    .await;
    let fee =
        |i: usize| repriced["attempts"][i]["max_fee_per_gas"].as_str().unwrap().parse::<u128>().unwrap();
    assert!(fee(1) * 100 >= fee(0) * 110, "at least +10%: {} -> {}", fee(0), fee(1));
    anvil.mine(1).await.unwrap();
    let included = until_body(&base, &id, "included", |b| {
        ["included", "safe", "finalized"].contains(&b["state"].as_str().unwrap_or_default())
    })
    .await;
    assert_eq!(
        included["tx_hash"], repriced["attempts"][1]["hash"],
        "the re-priced attempt is the one mined"
    );

    // Cancel: the nonce is filled with the no-op, and the request ends cancelled.
    let (status, second) = http("POST", &format!("{base}/v1/transactions"), &auth, Some(&body)).await;
    assert_eq!(status, 202, "{second}");
    let id = second["id"].as_str().unwrap().to_string();
    until_body(&base, &id, "submitted", |b| b["state"] == "submitted").await;
    let (status, answer) = http("POST", &format!("{base}/v1/transactions/{id}/cancel"), &auth, None).await;
    assert_eq!((status, &answer["ending"]), (200, &serde_json::json!("cancelled")), "{answer}");
    until_body(&base, &id, "the no-op sent", |b| {
        b["attempts"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|a| a["purpose"] == "noop" && a["sent"] == true)
    })
    .await;
    anvil.mine(1).await.unwrap();
    let cancelled = until_body(&base, &id, "cancelled", |b| b["state"] == "cancelled").await;
    assert_eq!(cancelled["receipt"]["status"], "success", "{cancelled}");
    assert_eq!(
        anvil.provider().get_transaction_count(anvil.accounts()[0]).await.unwrap(),
        2,
        "no gap: nonces 0 and 1 used"
    );
}

/// Ten signers with keys of their own, funded on anvil: their names, keys and addresses.
async fn ten_signers(anvil: &Anvil) -> Vec<(String, String, Address)> {
    let mut signers = Vec::new();
    for i in 0..10u8 {
        let key = format!("0x{}", hex::encode([i + 0x31; 32]));
        let local = LocalSigner::from_hex("s", &key).unwrap();
        let address = gemgate_domain::ports::Signer::address(&local);
        let _: () = anvil
            .provider()
            .raw_request("anvil_setBalance".into(), (address, U256::from(10u64).pow(U256::from(21u64))))
            .await
            .unwrap();
        signers.push((format!("s{i}"), key, address));
    }
    signers
}

/// Who holds each signer's lease now (live ones only): lease name -> holder.
async fn signer_holders(store: &SqlStore) -> HashMap<String, String> {
    use gemgate_domain::ports::Leases;
    let now = gemgate_cluster::unix_ms();
    store
        .leases()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.key.role == gemgate_domain::cluster::LeaseRole::Signer && l.is_live(now))
        .map(|l| (l.key.name, l.holder))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_txm_processes_share_ten_signers_and_a_killed_ones_signers_move_within_five_seconds() {
    let test = "two_txm_processes_share_ten_signers_and_a_killed_ones_signers_move_within_five_seconds";
    let Some(db) = common::postgres(test, "txm_pair").await else { return };
    let Some(anvil) = anvil_or_skip(test, AnvilOptions::default()).await.unwrap() else { return };
    let signers = ten_signers(&anvil).await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = format!(
        "[database]\nurl = \"{}\"\n[[chains]]\nid = {chain}\nrpc = [\"{}\"]\n[txm]\npoll_interval = \"100ms\"\nrebroadcast_after = \"1s\"\n",
        db.url,
        anvil.endpoint(),
        chain = anvil.chain_id()
    );
    for (name, _, _) in &signers {
        toml.push_str(&format!(
            "[[signers]]\nname = \"{name}\"\nkind = \"local\"\nkey_env = \"GEMGATE_TEST_KEY_{name}\"\nchains = [{}]\n",
            anvil.chain_id()
        ));
    }
    let config = dir.path().join("gemgate.toml");
    std::fs::write(&config, toml).unwrap();
    let txm = |name: &str| {
        KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_gemgate"))
                .args(["--log-filter", "warn", "txm", "--config", config.to_str().unwrap()])
                .env("GEMGATE__CLUSTER__NAME", name)
                .envs(signers.iter().map(|(n, key, _)| (format!("GEMGATE_TEST_KEY_{n}"), key.clone())))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    };

    // The front door: accepts requests into the shared ledger; the two processes do the work.
    let store = SqlStore::connect(&db.url, 4, ProjectionSet::default()).await.unwrap();
    store.migrate().await.unwrap();
    let rpc: Arc<dyn Broadcaster> = Arc::new(TxRpc::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse().unwrap(), "anvil".into())],
        RetryPolicy::default(),
    ));
    let named = signers
        .iter()
        .map(|(name, key, address)| {
            let signer = Arc::new(LocalSigner::from_hex(name, key).unwrap());
            (
                name.clone(),
                NamedSigner { name: name.clone(), chains: vec![anvil.chain_id()], address: *address, signer },
            )
        })
        .collect();
    let manager = Arc::new(TxManager::new(
        Arc::new(store.clone()),
        HashMap::from([(anvil.chain_id(), rpc)]),
        named,
        TxmOptions::default(),
    ));
    let (chain_id, to) = (anvil.chain_id(), anvil.accounts()[3]);
    let names: Vec<String> = signers.iter().map(|(n, _, _)| n.clone()).collect();
    let submit = move |wave: u32| {
        let (manager, names) = (manager.clone(), names.clone());
        async move {
            let mut ids = Vec::new();
            for name in names {
                let mut request =
                    Submit::transfer(&format!("{name}-{wave}"), &name, chain_id, to, U256::from(1u64));
                request.gas_limit = Some(21_000);
                ids.push(manager.submit(request).await.unwrap().record().id.clone());
            }
            ids
        }
    };

    let mut processes = HashMap::from([("A", txm("A")), ("B", txm("B"))]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // (Ten signer leases; a chain's client-signed worker, where there is one, holds an eleventh.)
    while signer_holders(&store).await.len() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "all ten signers get a worker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ids = Vec::new();
    for wave in 0..5 {
        ids.extend(submit(wave).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // SIGKILL the process holding the most signers, while requests are in flight.
    let holders = signer_holders(&store).await;
    let count = |p: &str| holders.values().filter(|h| h.as_str() == p).count();
    let (victim, survivor) = if count("A") >= count("B") { ("A", "B") } else { ("B", "A") };
    let moving = count(victim);
    let mut killed = processes.remove(victim).unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let killed_at = tokio::time::Instant::now();
    let submitting = tokio::spawn({
        let submit = submit.clone();
        async move {
            let mut ids = Vec::new();
            for wave in 5..10 {
                ids.extend(submit(wave).await);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            ids
        }
    });
    loop {
        let holders = signer_holders(&store).await;
        if holders.len() >= 10 && holders.values().all(|h| h == survivor) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "{victim}'s signers move to {survivor}: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = killed_at.elapsed();
    eprintln!("{test}: {moving} signers moved from {victim} to {survivor} in {moved:?}");
    assert!(moved < Duration::from_secs(5), "the signers moved within the 5 s failover target ({moved:?})");
    ids.extend(submitting.await.unwrap());

    // Every request included once, each signer's nonces contiguous from 0, as many transactions on chain.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut nonces: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for id in &ids {
        let record = loop {
            let record = store.transaction(id).await.unwrap().unwrap();
            if DONE.contains(&record.state) {
                break record;
            }
            assert!(!record.state.is_terminal(), "{id} ended {:?}: {:?}", record.state, record.error);
            assert!(tokio::time::Instant::now() < deadline, "{id} still {:?}", record.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            nonces.entry(record.signer.clone()).or_default().insert(record.nonce),
            "{id}: nonce used twice"
        );
    }
    for (name, _, address) in &signers {
        let used: Vec<u64> = nonces[name].iter().copied().collect();
        assert_eq!(used, (0..10).collect::<Vec<u64>>(), "{name}: nonces 0..10 without a gap");
        let on_chain = anvil.provider().get_transaction_count(*address).await.unwrap();
        assert_eq!(on_chain, 10, "{name}: each request once on chain");
    }
    drop(processes);
    store.close().await;
    db.drop().await;
}
