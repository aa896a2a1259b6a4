//! Secrets stay secret. `gemgate run` logs at `trace` on Postgres with a database password, a signer key,
//! an API key, a webhook signing secret and an inbound-webhook secret, and is driven through what touches
//! each: a transaction signed and mined, requests with a wrong key, webhook deliveries, an inbound webhook.
//! Then everything it printed, every answer it gave, what the webhook receiver got, `gemgate config check`'s
//! output and every row of every table in its database are searched for each secret in every form it
//! takes (as given, hex, base64, the raw key bytes' hex, the address-independent key hex without `0x`).

#![cfg(feature = "bench")]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use base64::Engine as _;
use hmac::Mac as _;
use sha2::Digest as _;
use support::{KillOnDrop, TempPostgres, free_port, http};

/// Bytes that look random and differ per run, without a random-number dependency.
fn fresh(n: usize, salt: &str) -> Vec<u8> {
    let seed = format!("{salt}-{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let mut out = Vec::new();
    let mut block = sha2::Sha256::digest(seed.as_bytes()).to_vec();
    while out.len() < n {
        out.extend_from_slice(&block);
        block = sha2::Sha256::digest(&block).to_vec();
    }
    out.truncate(n);
    out
}

/// Every row of every table of the database, as text.
async fn dump(url: &str) -> String {
    use sqlx::{Connection as _, Row as _};
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let mut text = String::new();
    for table in &tables {
        let sql = format!("SELECT t::text FROM \"{table}\" t");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut connection).await.unwrap() {
            text.push_str(&row.get::<String, _>(0));
            text.push('\n');
        }
    }
    assert!(tables.len() > 10, "the whole schema was read: {tables:?}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_answers_deliveries_config_check_or_the_database() {
    let test = "secrets_never_reach_logs_answers_deliveries_config_check_or_the_database";
    let Some(anvil) =
        gemgate_testkit::anvil_or_skip(test, gemgate_testkit::AnvilOptions::default()).await.unwrap()
    else {
        return;
    };
    let Some(database) = TempPostgres::create(test, "gemgate_secrets").await else { return };
    let chain = gemgate_testkit::build_log_chain(&anvil, 5, 40).await.unwrap();

    // The secrets, each fresh.
    let password = format!("pw{}", hex::encode(fresh(12, "password")));
    let key = fresh(32, "signer");
    let key_hex = hex::encode(&key);
    let api_key = format!("gk_{}", hex::encode(fresh(20, "api")));
    let wrong_key = format!("gk_{}", hex::encode(fresh(20, "wrong")));
    let hook_raw = fresh(32, "webhook");
    let hook_b64 = base64::engine::general_purpose::STANDARD.encode(&hook_raw);
    let hook_secret = format!("whsec_{hook_b64}");
    let inbound = hex::encode(fresh(24, "inbound"));
    let forms: Vec<(&str, String)> = vec![
        ("the database password", password.clone()),
        ("the signer key (hex)", key_hex.clone()),
        ("the signer key (base64)", base64::engine::general_purpose::STANDARD.encode(&key)),
        ("the API key", api_key.clone()),
        ("the refused API key", wrong_key.clone()),
        ("the webhook secret", hook_b64.clone()),
        ("the webhook secret's bytes (hex)", hex::encode(&hook_raw)),
        ("the inbound webhook secret", inbound.clone()),
    ];

    let signer = alloy::signers::local::PrivateKeySigner::from_slice(&key).unwrap();
    let _: serde_json::Value = anvil
        .provider()
        .raw_request("anvil_setBalance".into(), (signer.address(), U256::from(10u64).pow(U256::from(20u64))))
        .await
        .unwrap();

    let (hook_url, deliveries) = support::webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "{db}"
[api]
listen = "{listen}"
public_reads = false
gemforce_webhook_secret_env = "GEMGATE_TEST_INBOUND"
[[api.keys]]
name = "backend"
key_sha256 = "{api_sha}"
scopes = ["read", "transact"]
[[chains]]
id = 31337
rpc = ["{rpc}"]
poll_interval = "100ms"
{contract}[[sinks]]
name = "hooks"
kind = "webhook"
url = "{hook_url}"
secret_env = "GEMGATE_TEST_HOOK"
[[signers]]
name = "ops"
kind = "local"
key_env = "GEMGATE_TEST_KEY"
chains = [31337]
[txm]
poll_interval = "100ms"
"#,
            db = database.url_with_password(Some(&password)),
            api_sha = hex::encode(sha2::Sha256::digest(api_key.as_bytes())),
            rpc = anvil.endpoint(),
            contract = support::spammer_contract(dir.path(), &chain),
        ),
    )
    .unwrap();
    let envs = [
        ("GEMGATE_TEST_KEY", format!("0x{key_hex}")),
        ("GEMGATE_TEST_HOOK", hook_secret.clone()),
        ("GEMGATE_TEST_INBOUND", inbound.clone()),
    ];
    let log = dir.path().join("trace.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    run.args(["--log-filter", "trace", "run", "--config", config.to_str().unwrap()])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    let running = KillOnDrop(run.stdin(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(Instant::now() < deadline, "gemgate run did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut answers = String::new();
    let base = format!("http://{listen}");
    let bearer = format!("Bearer {api_key}");
    let wrong = format!("Bearer {wrong_key}");
    // Refused: a wrong key, on a read and on a write; the answer must not echo it.
    for (method, path) in [("GET", "/v1/status"), ("POST", "/v1/transactions")] {
        let body =
            serde_json::json!({"signer": "ops", "chain_id": 31337, "to": anvil.accounts()[1], "value": "1"});
        let answer =
            support::try_http(method, &format!("{base}{path}"), &[("authorization", &wrong)], Some(&body))
                .await
                .unwrap();
        assert_eq!(answer.status, 401, "{path}: {:?}", answer.body);
        answers.push_str(&format!("{:?} {}\n", answer.headers, answer.body));
    }
    // A transaction signed with the key and mined.
    let body =
        serde_json::json!({"signer": "ops", "chain_id": 31337, "to": anvil.accounts()[1], "value": "7"});
    let (status, accepted) =
        http("POST", &format!("{base}/v1/transactions"), &[("authorization", &bearer)], Some(&body)).await;
    assert!(status == 200 || status == 201 || status == 202, "{status} {accepted}");
    answers.push_str(&format!("{accepted}\n"));
    let id = accepted["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, record) =
            http("GET", &format!("{base}/v1/transactions/{id}"), &[("authorization", &bearer)], None).await;
        answers.push_str(&format!("{record}\n"));
        if ["included", "safe", "finalized"].contains(&record["state"].as_str().unwrap_or_default()) {
            break;
        }
        assert!(Instant::now() < deadline, "the transaction was not mined: {record}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An inbound webhook, signed, then the same with a bad signature.
    let payload = br#"{"id":"evt-1","type":"deal.updated","data":{"deal":1}}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(inbound.as_bytes()).unwrap();
    mac.update(payload);
    let signature = hex::encode(mac.finalize().into_bytes());
    let text = std::str::from_utf8(payload).unwrap();
    for (signature, expected) in [(signature.as_str(), 202), ("00ff", 401)] {
        let answer = support::try_http_text(
            "POST",
            &format!("{base}/v1/webhooks/gemforce"),
            &[("x-gemforce-signature", signature)],
            text,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, expected, "{:?}", answer.body);
        answers.push_str(&format!("{:?} {}\n", answer.headers, answer.body));
    }
    // Every event delivered to the webhook receiver (signed with the secret, which must not travel).
    let events = gemgate_bench::chain_logs(
        &anvil,
        chain.address,
        chain.start_block,
        anvil.block_number().await.unwrap(),
    )
    .await
    .unwrap()
    .len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while deliveries.lock().unwrap().iter().filter(|d| d.contains("webhook-signature: v1,")).count() < events
    {
        assert!(Instant::now() < deadline, "the webhook deliveries did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(running);

    let mut check = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    check.args(["--log-filter", "trace", "config", "check", "--config", config.to_str().unwrap()]);
    let checked = check.envs(envs.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    let logs = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(
        logs.lines().count() > 1_000 && logs.contains("TRACE"),
        "trace logs were written ({} lines)",
        logs.lines().count()
    );
    let delivered = deliveries.lock().unwrap().join("\n");
    let places = [
        ("the trace logs of gemgate run", logs),
        ("the API's answers", answers),
        ("the webhook deliveries", delivered),
        (
            "gemgate config check",
            format!(
                "{}{}",
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr)
            ),
        ),
        ("the database", dump(&database.url()).await),
    ];
    let mut leaks = Vec::new();
    for (place, text) in &places {
        for (what, secret) in &forms {
            if text.contains(secret.as_str()) || text.to_lowercase().contains(&secret.to_lowercase()) {
                leaks.push(format!("{what} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
    eprintln!(
        "{test}: {} trace lines, {} deliveries, the database and every answer searched for {} secret forms",
        places[0].1.lines().count(),
        events,
        forms.len()
    );
}
