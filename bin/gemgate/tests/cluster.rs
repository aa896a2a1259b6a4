//! Several `gemgate` processes on one Postgres database: one indexer leader per chain with a hot standby,
//! what `/ready`, `GET /v1/cluster` and `gemgate status` say about it, and the leader's failover measured
//! through `gemgate bench failover` (killed and paused for real; the events table checked against
//! `eth_getLogs` at the end).

#[path = "../../../crates/store/tests/common/mod.rs"]
mod common;
#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gemgate_testkit::{AnvilOptions, anvil_or_skip, build_log_chain};
use support::{KillOnDrop, free_port, get};

/// These tests measure failover times: they run one at a time, not beside each other on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Postgres is reachable (a database made and dropped) and anvil runs: `false` means skipped.
async fn services(test: &str, tag: &str) -> bool {
    let Some(db) = common::postgres(test, tag).await else { return false };
    db.drop().await;
    anvil_or_skip(test, AnvilOptions { accounts: 1, ..AnvilOptions::default() }).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_leader_per_chain_shown_by_ready_cluster_and_status() {
    let test = "two_processes_one_leader_per_chain_shown_by_ready_cluster_and_status";
    let _serial = SERIAL.lock().await;
    let Some(db) = common::postgres(test, "cluster_pair").await else { return };
    let url = db.url.clone();
    let Some(anvil) =
        anvil_or_skip(test, AnvilOptions { accounts: 2, ..AnvilOptions::default() }).await.unwrap()
    else {
        return;
    };
    let chain = build_log_chain(&anvil, 10, 200).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let abi = dir.path().join("LogSpammer.json");
    std::fs::write(&abi, gemgate_testkit::artifacts::Artifact::named("LogSpammer").unwrap().json).unwrap();
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n[cluster]\nlease_ttl = \"2s\"\n[[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\n\
             poll_interval = \"100ms\"\n[[contracts]]\nname = \"spammer\"\nchain = 31337\naddress = \"{address}\"\n\
             abi = [\"{abi}\"]\nstart_block = {start}\n",
            rpc = anvil.endpoint(),
            address = chain.address,
            abi = abi.display(),
            start = chain.start_block,
        ),
    )
    .unwrap();
    let run = |name: &str, listen: &str| {
        KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_gemgate"))
                .args(["--log-filter", "warn", "run", "--config", config.to_str().unwrap()])
                .env("GEMGATE__CLUSTER__NAME", name)
                .env("GEMGATE__API__LISTEN", listen)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    };
    let listens = [format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())];
    let _a = run("alpha", &listens[0]);
    let _b = run("beta", &listens[1]);

    // Each process's /ready: ready, its parts, and leader on one, standby on the other, for chain 31337.
    let deadline = Instant::now() + Duration::from_secs(60);
    let standings = loop {
        let mut standings = Vec::new();
        for listen in &listens {
            let (status, body) = support::try_http("GET", &format!("http://{listen}/ready"), &[], None)
                .await
                .map(|a| (a.status, a.body))
                .unwrap_or((0, serde_json::Value::Null));
            let indexer = body["leases"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["role"] == "indexer" && l["name"] == "31337"))
                .map(|l| l["state"].as_str().unwrap_or_default().to_string());
            standings.push((status, body["holder"].as_str().unwrap_or_default().to_string(), indexer, body));
        }
        let states: Vec<Option<&str>> = standings.iter().map(|s| s.2.as_deref()).collect();
        if standings.iter().all(|s| s.0 == 200)
            && states.contains(&Some("leader"))
            && states.contains(&Some("standby"))
        {
            break standings;
        }
        assert!(Instant::now() < deadline, "one leader and one standby within 60 s: {standings:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let leader = standings.iter().find(|s| s.2.as_deref() == Some("leader")).unwrap();
    assert!(
        ["alpha", "beta"].contains(&leader.1.as_str()),
        "the holder is the configured name: {}",
        leader.1
    );
    let parts: Vec<&str> = leader.3["parts"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert_eq!(
        parts,
        ["index", "dispatch", "api"],
        "the parts `gemgate run` runs here (no signers configured)"
    );
    let token =
        leader.3["leases"].as_array().unwrap().iter().find(|l| l["role"] == "indexer").unwrap()["token"]
            .as_u64()
            .expect("a leader reports its fencing token");

    // GET /v1/cluster on either replica: both processes live, the chain's lease held by the leader.
    for listen in &listens {
        let (status, body) = get(&format!("http://{listen}/v1/cluster")).await;
        assert_eq!(status, 200, "{body}");
        let processes: Vec<&str> = body["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["live"] == true)
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(processes, ["alpha", "beta"], "{body}");
        let lease = body["leases"].as_array().unwrap().iter().find(|l| l["role"] == "indexer").unwrap();
        assert_eq!(lease["name"], "31337");
        assert_eq!(lease["holder"], leader.1.as_str());
        assert_eq!(lease["token"].as_u64(), Some(token));
        assert_eq!(lease["live"], true);
        let now = body["now_ms"].as_u64().unwrap();
        let renewed = lease["renewed_ms"].as_u64().unwrap();
        assert!(now.saturating_sub(renewed) < 2_000, "renewed within its 2 s time to live: {lease}");
        assert!(lease["since_ms"].as_u64().unwrap() <= renewed);
    }

    // `gemgate status`: the same, from the database, for an operator's shell.
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["status", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("indexer")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("31337") && line.contains(&leader.1) && line.ends_with("held"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["status", "--json", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["leases"][0]["holder"], leader.1.as_str(), "{json}");
    drop((_a, _b));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_leader_is_replaced_within_five_seconds_and_nothing_is_lost_or_invented() {
    let test = "a_killed_or_paused_leader_is_replaced_within_five_seconds_and_nothing_is_lost_or_invented";
    let _serial = SERIAL.lock().await;
    let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
    if !services(test, "cluster_failover").await {
        return;
    }
    // Two SIGKILLs and two SIGSTOPs of the leader, each followed by a takeover; the bench checks the events
    // table against eth_getLogs and prints a JSON summary last.
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["bench", "failover", "--kills", "4", "--json", "--postgres", &admin])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("{stdout}");
    assert_eq!(summary["failures"], 4);
    assert_eq!(summary["identical"], true, "the events equal the chain's logs: {summary}");
    assert!(
        summary["stored_events"].as_u64().unwrap() > 100,
        "logs kept coming during the failures: {summary}"
    );
    let max = summary["max_ms"].as_u64().unwrap();
    assert!(max < 5_000, "every failover under 5 s with a 3 s lease: {summary}");
}

/// The chaos run: three `gemgate run` processes on one Postgres database and one RabbitMQ queue, at least
/// 30 process faults (SIGKILL + restart, SIGSTOP + SIGCONT) every 5-10 s, reorgs of 1-10 blocks every
/// few seconds, logs and transactions all along. `GEMGATE_CHAOS_FAULTS=N` runs a longer variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_under_kills_pauses_and_reorgs_lose_nothing_and_invent_nothing() {
    let test = "three_processes_under_kills_pauses_and_reorgs_lose_nothing_and_invent_nothing";
    let _serial = SERIAL.lock().await;
    let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
    let amqp = std::env::var("GEMGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    if !services(test, "cluster_chaos").await {
        return;
    }
    if std::net::TcpStream::connect("127.0.0.1:5672").is_err()
        && std::env::var("GEMGATE_TEST_AMQP_URL").is_err()
    {
        assert!(!gemgate_testkit::under_ci(), "RabbitMQ unreachable under CI");
        eprintln!("SKIPPED {test}: RabbitMQ unreachable");
        return;
    }
    let faults = std::env::var("GEMGATE_CHAOS_FAULTS").unwrap_or_else(|_| "30".into());
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["bench", "chaos", "--faults", &faults, "--json", "--postgres", &admin, "--amqp", &amqp])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(r["faults"].as_u64().unwrap() >= faults.parse::<u64>().unwrap(), "{r}");
    assert!(
        r["kills"].as_u64().unwrap() > 0 && r["pauses"].as_u64().unwrap() > 0,
        "both kinds of fault: {r}"
    );
    assert!(r["reorgs"].as_u64().unwrap() > 10, "reorgs all along: {r}");
    assert_eq!(r["events_identical"], true, "events == eth_getLogs of the canonical chain: {r}");
    assert!(r["events"].as_u64().unwrap() > 500, "{r}");
    assert_eq!(r["canonical_missing"], 0, "every canonical event arrived at the broker: {r}");
    assert_eq!(r["retractions_missing"], 0, "a retraction for every reverted delivered event: {r}");
    assert_eq!(r["nonce_problems"], serde_json::json!([]), "{r}");
    assert!(r["transactions"].as_u64().unwrap() > 100, "{r}");
    assert!(r["max_leader_gap_ms"].as_u64().unwrap() < 5_000, "no indexer leader for 5 s or more: {r}");
}

/// A process without the API (`gemgate index`) answers `/health`, `/ready` and `/metrics` on
/// `telemetry.listen`, for probes and scrapers; on SQLite it leads its chain alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_without_the_api_serves_probes_and_metrics_on_telemetry_listen() {
    let test = "an_indexer_without_the_api_serves_probes_and_metrics_on_telemetry_listen";
    let _serial = SERIAL.lock().await;
    let Some(anvil) =
        anvil_or_skip(test, AnvilOptions { accounts: 2, ..AnvilOptions::default() }).await.unwrap()
    else {
        return;
    };
    let chain = build_log_chain(&anvil, 5, 100).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[telemetry]\nlisten = \"{listen}\"\n[[chains]]\nid = 31337\n\
             rpc = [\"{rpc}\"]\npoll_interval = \"100ms\"\n{contract}",
            db = dir.path().join("gemgate.db").display(),
            rpc = anvil.endpoint(),
            contract = support::spammer_contract(dir.path(), &chain),
        ),
    )
    .unwrap();
    let _index = support::index(&config);
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Ok(answer) = support::try_http("GET", &format!("{base}/ready"), &[], None).await {
            let leads = answer.body["leases"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l["role"] == "indexer" && l["state"] == "leader"));
            if answer.status == 200 && leads {
                break answer.body;
            }
        }
        assert!(Instant::now() < deadline, "gemgate index answers /ready on telemetry.listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["parts"], serde_json::json!(["index"]), "{ready}");
    assert_eq!(get(&format!("{base}/health")).await, (200, serde_json::json!({"status": "ok"})));
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.as_str().is_some_and(|m| m.contains("gemgate_indexer_head_block{chain_id=\"31337\"}")),
        "the indexer's metrics: {metrics}"
    );
    // Only the probes: the API itself is not served here.
    assert_eq!(support::try_http("GET", &format!("{base}/v1/status"), &[], None).await.unwrap().status, 404);
}
