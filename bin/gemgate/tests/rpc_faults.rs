//! The indexer behind a provider that misbehaves: `gemgate chaos rpc-proxy` in front of anvil with one kind
//! of fault (and, in the last test, every kind at random), `gemgate index` following the chain through it
//! while logs keep coming and the chain reorgs (depth 1-5). Then the traffic and the reorgs stop, the faults
//! stay and the chain stands still: the indexer must reach the head through the proxy, and its events must equal `eth_getLogs` of the
//! canonical chain asked of anvil directly: nothing lost, nothing invented, no cursor past unverified data.
#![cfg(feature = "bench")]

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::LogSpammer;
use gemgate_testkit::{Anvil, AnvilOptions, SplitMix64, anvil_or_skip, build_log_chain};
use support::KillOnDrop;

/// `gemgate chaos rpc-proxy` in front of `upstream`; its URL from the first line it prints.
fn proxy(upstream: &str, faults: &[&str], seed: u64) -> (KillOnDrop, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    command.args([
        "chaos",
        "rpc-proxy",
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--report-every",
        "0",
    ]);
    command.args(["--seed", &seed.to_string()]);
    for fault in faults {
        command.args(["--fault", fault]);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    // Keep reading what it prints, so its writes never meet a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // "gemgate chaos rpc-proxy: http://127.0.0.1:PORT -> ..."
    let url = first.split_whitespace().nth(3).unwrap_or_else(|| panic!("no URL in {first:?}")).to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    (KillOnDrop(child), url)
}

/// Logs and reorgs for `seconds`, then quiet; the indexer must reach the head and equal the chain.
async fn converges_under(test: &str, faults: &[&str], check: &[&str]) {
    let options =
        AnvilOptions { accounts: 2, block_time: Some(Duration::from_millis(400)), ..Default::default() };
    let Some(anvil) = anvil_or_skip(test, options).await.unwrap() else { return };
    let chain = build_log_chain(&anvil, 10, 50).await.unwrap();
    let seed = std::env::var("GEMGATE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let (_proxy, url) = proxy(&anvil.endpoint(), faults, seed);

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = dir.path().join("gemgate.toml");
    let contract = support::spammer_contract(dir.path(), &chain);
    let text = format!(
        "[database]\nurl = \"{db}\"\n[[chains]]\nid = 31337\nrpc = [\"{url}\"]\npoll_interval = \"1s\"\n{contract}"
    );
    std::fs::write(&config, text).unwrap();
    let _indexer = support::index(&config);

    // Traffic and reorgs while the faults strike.
    let traffic = {
        let (provider, from, address) = (anvil.provider(), anvil.accounts()[0], chain.address);
        tokio::spawn(async move {
            let spammer = LogSpammer::new(address, provider);
            let until = Instant::now() + Duration::from_secs(10);
            for i in 0u64.. {
                if Instant::now() > until {
                    break;
                }
                let _ = spammer.spam(U256::from(20), U256::from(i)).from(from).send().await;
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        })
    };
    let mut rng = SplitMix64::new(seed);
    let mut reorgs = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.range(800, 1_800))).await;
        anvil.reorg(rng.range(1, 5)).await.unwrap();
        reorgs += 1;
    }
    traffic.await.unwrap();

    // Quiet now, the chain stands still: the indexer reaches the head through the faults.
    let _: serde_json::Value =
        alloy::providers::Provider::raw_request(&anvil.provider(), "evm_setIntervalMining".into(), (0u64,))
            .await
            .unwrap();
    let store = SqlStore::connect(&db, 1, ProjectionSet::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let cursor = loop {
        let head = anvil.block_number().await.unwrap();
        let cursor = gemgate_domain::ports::Store::cursor(&store, 31337).await.unwrap();
        if let Some(c) = cursor.filter(|c| c.number >= head) {
            break c;
        }
        assert!(Instant::now() < deadline, "{test}: the indexer did not reach head {head} (at {cursor:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stored = gemgate_bench::stored_logs(&store).await.unwrap();
    let truth =
        gemgate_bench::chain_logs(&anvil, chain.address, chain.start_block, cursor.number).await.unwrap();
    assert!(truth.len() >= 150, "{test}: logs kept coming ({} on chain)", truth.len());
    assert_eq!(
        stored.len(),
        truth.len(),
        "{test}: as many events as the canonical chain has logs (after {reorgs} reorgs)"
    );
    assert!(stored == truth, "{test}: the events are the canonical chain's logs, block hash and all");
    assert_eq!(block_hash(&anvil, cursor.number).await, cursor.hash, "{test}: the cursor is canonical");

    let (status, counts) = support::get(&format!("{url}/")).await;
    assert_eq!(status, 200);
    for kind in check {
        assert!(counts[kind].as_u64().unwrap_or(0) > 0, "{test}: the proxy injected {kind}: {counts}");
    }
    eprintln!("{test}: {} events equal the chain after {reorgs} reorgs; proxy counts {counts}", stored.len());
    store.close().await;
}

async fn block_hash(anvil: &Anvil, number: u64) -> alloy::primitives::B256 {
    use alloy::providers::Provider;
    anvil.provider().get_block_by_number(number.into()).await.unwrap().unwrap().header.hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_jitter() {
    converges_under("latency_and_jitter", &["latency=5ms..80ms"], &["latency"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_with_and_without_retry_after() {
    converges_under("rate_limits_with_and_without_retry_after", &["429=1@0.1", "429@0.1"], &["429"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors() {
    converges_under("server_errors", &["5xx@0.2"], &["5xx"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets() {
    converges_under("connection_resets", &["reset@0.15"], &["reset"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_invalid_json() {
    converges_under(
        "truncated_and_invalid_json",
        &["truncate@0.1", "invalid-json@0.1"],
        &["truncate", "invalid-json"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node() {
    converges_under("a_lagging_node", &["lag=3@0.5"], &["lag"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_logs_while_the_head_is_newer() {
    converges_under("stale_logs_while_the_head_is_newer", &["stale-logs@0.5"], &["stale-logs"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_another_block_hash() {
    converges_under("logs_of_another_block_hash", &["uncle-logs@0.3"], &["uncle-logs"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_ranges_filled_later() {
    converges_under("empty_ranges_filled_later", &["empty-logs@0.3"], &["empty-logs"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finality_tags_going_backwards() {
    converges_under("finality_tags_going_backwards", &["finality-backwards=8@0.5"], &["finality-backwards"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_holes_in_its_index() {
    converges_under("a_node_with_holes_in_its_index", &["holes@0.15"], &["holes"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_random() {
    let all = [
        "latency=1ms..20ms",
        "429=1@0.03",
        "429@0.03",
        "5xx@0.05",
        "reset@0.05",
        "truncate@0.03",
        "invalid-json@0.03",
        "lag=3@0.1",
        "stale-logs@0.2",
        "uncle-logs@0.2",
        "empty-logs@0.2",
        "finality-backwards=5@0.2",
        "holes@0.05",
    ];
    converges_under("every_fault_at_random", &all, &["5xx", "reset", "lag", "finality-backwards"]).await;
}

#[test]
fn bad_fault_rules_are_refused_before_listening() {
    let out = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["chaos", "rpc-proxy", "--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0"])
        .args(["--fault", "lag=many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fault \"lag=many\": \"many\" is not a block count"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing listened: {}", String::from_utf8_lossy(&out.stdout));
}
