//! Contract-state snapshots (`[[snapshots]]`) through the binary: `gemgate snapshot run` reads
//! `carbonCreditBalance` for every token of the `carbon_credits` projection at one pinned block in
//! Multicall3 batches, and every row equals the contract's answer at that block (read independently with
//! alloy) and the event-derived balance; fixed arguments and a reverting call give their rows; `gemgate run`
//! runs them on their block schedule; misconfigured entries are refused at start with the key named.

#[allow(dead_code)]
mod projections;

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use gemgate_testkit::bindings::CarbonCreditFacet;
use projections::*;
use serde_json::Value;
use support::KillOnDrop;

#[allow(dead_code)]
mod support;

fn with_snapshots(config: &std::path::Path, extra: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(extra);
    std::fs::write(config, text).unwrap();
}

const SNAPSHOTS: &str = r#"
[[snapshots]]
name = "credits"
contract = "gemforce"
function = "carbonCreditBalance"
keys = { table = "carbon_credits", column = "token_id" }
block = "latest"
batch = 2
every = "3 blocks"

[[snapshots]]
name = "owners"
contract = "gemforce"
function = "ownerOf(uint256)"
args = ["{key}"]
keys = { table = "gemforce_tokens", column = "token_id" }
block = "latest"

[[snapshots]]
name = "missing-token"
contract = "gemforce"
function = "ownerOf"
args = ["999999"]
table = "snapshot_missing"

[[snapshots]]
name = "settled"
contract = "gemforce"
function = "carbonCreditBalance"
keys = { table = "carbon_credits", column = "token_id" }
every = "1s"
"#;

fn run_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

async fn rows(url: &str, table: &str) -> Vec<(Value, Option<Value>, Option<String>, i64, String)> {
    let store = open(url).await;
    let mut tx = store.begin().await.unwrap();
    use gemgate_projections::{Cell, ColumnKind::*};
    let cells = tx
        .tx()
        .fetch(
            &format!("SELECT args, value, reverted, block_number, block_hash FROM {table} ORDER BY key"),
            Vec::new(),
            &[Json, Json, Text, Int, Text],
        )
        .await
        .unwrap();
    drop(tx);
    store.close().await;
    cells
        .into_iter()
        .map(|r| {
            let json = |c: &Cell| match c {
                Cell::Json(v) => Some(v.clone()),
                _ => None,
            };
            let text = |c: &Cell| c.as_text().map(String::from);
            let int = |c: &Cell| if let Cell::Int(i) = c { *i } else { -1 };
            (json(&r[0]).unwrap(), json(&r[1]), text(&r[2]), int(&r[3]), text(&r[4]).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_read_every_key_at_one_block_and_run_on_their_schedule() {
    let test = "snapshots_read_every_key_at_one_block_and_run_on_their_schedule";
    let Some((anvil, d)) = chain(test, 2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = config(dir.path(), "gemgate.toml", &url, &anvil, &d, "127.0.0.1:0");
    with_snapshots(&config, SNAPSHOTS);
    succeed(gemgate(&["index", "--once"], &config), "index --once");
    let credits = dump(&url).await["carbon_credits"].clone();
    assert!(credits.len() >= 2, "the scenario gives credits to several tokens");

    let out = succeed(gemgate(&["snapshot", "run", "credits"], &config), "snapshot run credits");
    let run = run_json(&out);
    assert_eq!(run["state"], "complete", "{run}");
    assert_eq!(run["rows"].as_u64(), Some(credits.len() as u64), "one row per token: {run}");
    assert_eq!(run["batches"].as_u64(), Some(credits.len().div_ceil(2) as u64), "batches of 2: {run}");
    let block = run["block_number"].as_u64().unwrap();
    let hash: alloy::primitives::B256 = run["block_hash"].as_str().unwrap().parse().unwrap();

    // Each row: the contract's own answer at that block, read here with alloy, and the projection's balance.
    let carbon = CarbonCreditFacet::new(d.diamond, anvil.provider());
    let snapshot = rows(&url, "snapshot_credits").await;
    assert_eq!(snapshot.len(), credits.len());
    for (args, value, reverted, number, row_hash) in &snapshot {
        assert_eq!((*number as u64, row_hash.as_str()), (block, hash.to_string().as_str()), "one block");
        assert!(reverted.is_none());
        let token: U256 = args[0].as_str().unwrap().parse().unwrap();
        let on_chain = carbon.carbonCreditBalance(token).block(hash.into()).call().await.unwrap();
        let value = value.as_ref().unwrap();
        let read = value.as_object().and_then(|o| o.values().next()).unwrap_or(value);
        assert_eq!(read.as_str(), Some(on_chain.to_string().as_str()), "token {token}: {value}");
        let projected = credits.iter().find(|r| r["token_id"] == args[0]).unwrap();
        assert_eq!(projected["balance"].as_str(), Some(on_chain.to_string().as_str()), "token {token}");
    }

    // A template argument, and a fixed call that reverts (recorded with its reason, not a failed run).
    let out = succeed(gemgate(&["snapshot", "run", "owners"], &config), "snapshot run owners");
    assert_eq!(run_json(&out)["state"], "complete");
    let tokens = dump(&url).await["gemforce_tokens"].clone();
    let owners = rows(&url, "snapshot_owners").await;
    assert_eq!(owners.len(), tokens.len());
    for (args, value, _, _, _) in &owners {
        let token = tokens.iter().find(|t| t["token_id"] == args[0]).unwrap();
        let owner =
            value.as_ref().and_then(|v| v.as_object()?.values().next()?.as_str().map(str::to_lowercase));
        assert_eq!(owner, token["owner"].as_str().map(str::to_lowercase), "{value:?} {token}");
    }
    let out = succeed(gemgate(&["snapshot", "run", "missing-token"], &config), "snapshot run missing-token");
    assert_eq!(run_json(&out)["rows"], 1);
    let missing = rows(&url, "snapshot_missing").await;
    assert!(missing[0].2.as_deref().is_some_and(|r| r.contains("NonexistentToken")), "{missing:?}");

    // The default block is the finalized one (anvil: 64 below the head, so mine past the traffic first).
    anvil.mine(70).await.unwrap();
    let out = succeed(gemgate(&["snapshot", "run", "settled"], &config), "snapshot run settled");
    let run = run_json(&out);
    let finalized = anvil
        .provider()
        .get_block_by_number(alloy::rpc::types::BlockNumberOrTag::Finalized)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run["block_number"].as_u64(), Some(finalized.header.number), "pinned to finalized: {run}");
    assert_eq!(run["block_hash"].as_str(), Some(finalized.header.hash.to_string().as_str()));
    assert_eq!(run["rows"].as_u64(), Some(credits.len() as u64), "{run}");

    // `gemgate run` runs "credits" every 3 blocks of the chain, and "settled" every second.
    let mut command = gemgate(&["run"], &config);
    let listen = format!("127.0.0.1:{}", support::free_port());
    command.env("GEMGATE__API__LISTEN", &listen);
    let _service = KillOnDrop(
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let complete = loop {
        anvil.mine(1).await.unwrap();
        let out = succeed(gemgate(&["snapshot", "runs", "credits"], &config), "snapshot runs");
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let complete: Vec<u64> = runs
            .iter()
            .filter(|r| r["state"] == "complete")
            .map(|r| r["block_number"].as_u64().unwrap())
            .collect();
        if complete.len() >= 3 {
            break complete;
        }
        assert!(Instant::now() < deadline, "the schedule did not run: {runs:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        complete.windows(2).all(|w| w[0] >= w[1] + 3),
        "newest first, at least 3 blocks apart: {complete:?}"
    );
    // The duration schedule ran on its own clock: several runs, whatever the blocks did.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = succeed(gemgate(&["snapshot", "runs", "settled"], &config), "snapshot runs settled");
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if runs.iter().filter(|r| r["state"] == "complete").count() >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the 1s schedule did not run repeatedly: {runs:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_snapshots_are_refused_with_the_key_named() {
    let test = "misconfigured_snapshots_are_refused_with_the_key_named";
    let Some((anvil, d)) = chain(test, 1).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    for (name, extra, expected) in [
        ("table", "keys = { table = \"nope\", column = \"token_id\" }", "snapshots[0].keys.table"),
        ("column", "keys = { table = \"carbon_credits\", column = \"nope\" }", "snapshots[0].keys.column"),
        ("function", "", "snapshots[0].function"),
    ] {
        let config = config(dir.path(), &format!("{name}.toml"), &url, &anvil, &d, "127.0.0.1:0");
        let function = if name == "function" { "noSuchView" } else { "carbonCreditBalance" };
        with_snapshots(
            &config,
            &format!(
                "[[snapshots]]\nname = \"x\"\ncontract = \"gemforce\"\nfunction = \"{function}\"\n{extra}\n"
            ),
        );
        let out = gemgate(&["snapshot", "run", "x"], &config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{name}: {stderr}");
    }
    let config = config(dir.path(), "every.toml", &url, &anvil, &d, "127.0.0.1:0");
    with_snapshots(
        &config,
        "[[snapshots]]\nname = \"x\"\ncontract = \"gemforce\"\nfunction = \"f\"\nevery = \"soon\"\ntable = \"Bad Name\"\n",
    );
    let out = gemgate(&["config", "check"], &config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("snapshots[0].every") && stderr.contains("snapshots[0].table"), "{stderr}");
}
