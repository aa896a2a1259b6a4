//! `gemgate replay --from-store` through the binary: projection tables deliberately corrupted are rebuilt
//! from the stored events to exactly what a fresh index of the chain gives (SQLite and Postgres); the
//! swapped-in journal still reverts a later reorg; a replay SIGKILLed three times resumes to the same
//! tables, the live tables untouched until its swap; and beside a running `gemgate run` (indexer following
//! new traffic, API answering from the old tables) it swaps in atomically.

#[path = "../../../crates/store/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::{ClaimTopicsRegistryFacet, TradeDealFacet};
use gemgate_testkit::{
    Anvil, AnvilOptions, Deployment, Scenario, ScenarioOptions, anvil_or_skip, deploy_gemforce,
};
use support::{KillOnDrop, free_port, get};

/// anvil with the sample contracts and `rounds` of the scenario's traffic.
async fn chain(test: &str, rounds: u32) -> Option<(Anvil, Deployment)> {
    let anvil = anvil_or_skip(test, AnvilOptions::default()).await.unwrap()?;
    let provider = anvil.provider();
    let deployment = deploy_gemforce(&provider, anvil.accounts()[0]).await.unwrap();
    Scenario::new(&deployment, anvil.accounts(), ScenarioOptions { seed: 11, rounds })
        .unwrap()
        .run(&provider)
        .await
        .unwrap();
    Some((anvil, deployment))
}

/// `blocks` more transactions (a block each) whose events change projections: trade deal 1 updated,
/// claim topics added.
async fn traffic(anvil: &Anvil, d: &Deployment, tag: u64, blocks: u64) {
    let provider = anvil.provider();
    let trade = TradeDealFacet::new(d.diamond, provider.clone());
    let topics = ClaimTopicsRegistryFacet::new(d.diamond, provider.clone());
    for i in 0..blocks {
        let pending = if i % 2 == 0 {
            let (rate, name) = (U256::from(100 + i), format!("replay {tag}-{i}"));
            let call = trade.updateTradeDeal(
                U256::from(1),
                name,
                "R".into(),
                rate,
                U256::from(2),
                d.vabb,
                d.vabi,
                d.usdc,
            );
            call.from(d.owner).send().await.unwrap()
        } else {
            topics.addClaimTopic(U256::from(10_000 * tag + i)).from(d.owner).send().await.unwrap()
        };
        gemgate_testkit::confirm(&provider, pending, "replay test traffic").await.unwrap();
    }
}

/// The demo's three Gemforce contracts, indexing into `url`.
fn config(dir: &Path, name: &str, url: &str, anvil: &Anvil, d: &Deployment, listen: &str) -> PathBuf {
    let mut text = format!(
        "[database]\nurl = \"{url}\"\n[api]\nlisten = \"{listen}\"\n\
         [[chains]]\nid = 31337\nrpc = [\"{}\"]\npoll_interval = \"50ms\"\n",
        anvil.endpoint()
    );
    for (contract, address, flag) in [
        ("gemforce", d.diamond, "diamond"),
        ("identity-factory", d.identity_factory, "gemforce"),
        ("treasury", d.treasury, "gemforce"),
    ] {
        text.push_str(&format!(
            "[[contracts]]\nname = \"{contract}\"\nchain = 31337\naddress = \"{address}\"\n{flag} = true\nstart_block = {}\n",
            d.start_block
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn gemgate(args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    command.args(["--log-filter", "warn"]).args(args).arg("--config").arg(config);
    command
}

fn succeed(mut command: Command, what: &str) -> Output {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

async fn open(url: &str) -> SqlStore {
    SqlStore::connect(url, 2, ProjectionSet::gemforce()).await.unwrap()
}

/// Every projection table's rows.
async fn dump(url: &str) -> Dump {
    let store = open(url).await;
    let mut dump = BTreeMap::new();
    for table in store.projections().tables() {
        let (mut rows, mut after) = (Vec::new(), None);
        loop {
            let page = store.projection_rows(table, None, after.clone(), 1_000).await.unwrap();
            let full = page.len() == 1_000;
            after = page.last().and_then(|r| r["key"].as_str()).map(String::from);
            rows.extend(page);
            if !full {
                break;
            }
        }
        dump.insert(table.name, rows);
    }
    store.close().await;
    dump
}

/// What a fresh `gemgate index --once` of the chain gives, in a database of its own.
async fn fresh_index(dir: &Path, url: &str, anvil: &Anvil, d: &Deployment) -> Dump {
    let config = config(dir, "fresh.toml", url, anvil, d, "127.0.0.1:0");
    succeed(gemgate(&["index", "--once"], &config), "the fresh index");
    dump(url).await
}

/// Damage three tables the way a bad migration or a hand edit would: a changed owner, a deleted trade
/// deal, and a phantom listing.
async fn corrupt(url: &str) {
    let store = open(url).await;
    for sql in [
        "UPDATE gemforce_tokens SET owner = '0x000000000000000000000000000000000000dEaD'",
        "DELETE FROM trade_deals WHERE key = (SELECT MIN(key) FROM trade_deals)",
        "INSERT INTO listings (key, chain_id, contract, status) VALUES ('31337:phantom:1', 31337, 'phantom', 'listed')",
    ] {
        store.execute_admin(sql).await.unwrap();
    }
    store.close().await;
}

type Dump = BTreeMap<&'static str, Vec<serde_json::Value>>;

/// Two dumps are equal, table by table; a difference names the table and its first differing row.
fn assert_same(actual: &Dump, expected: &Dump, context: &str) {
    assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{context}: tables");
    for (table, rows) in expected {
        let got = &actual[table];
        if let Some(i) = (0..rows.len().max(got.len())).find(|&i| rows.get(i) != got.get(i)) {
            panic!(
                "{context}: table {table} differs at row {i} ({} rows, expected {}):\n  got      {:?}\n  expected {:?}",
                got.len(),
                rows.len(),
                got.get(i),
                rows.get(i)
            );
        }
    }
}

fn non_empty(dump: &Dump) {
    for table in ["trade_deals", "gemforce_tokens", "listings", "carbon_credits", "identities"] {
        assert!(!dump[table].is_empty(), "the scenario fills {table}");
    }
}

async fn integer(url: &str, sql: &str) -> i64 {
    let store = open(url).await;
    let mut tx = store.begin().await.unwrap();
    let rows = tx.tx().fetch(sql, Vec::new(), &[gemgate_projections::ColumnKind::Int]).await.unwrap();
    drop(tx);
    store.close().await;
    match rows.first().map(|r| &r[0]) {
        Some(gemgate_projections::Cell::Int(n)) => *n,
        _ => -1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_corrupted_tables_and_keeps_reorgs_revertible_on_sqlite() {
    let test = "replay_rebuilds_corrupted_tables_and_keeps_reorgs_revertible_on_sqlite";
    let Some((anvil, d)) = chain(test, 2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = config(dir.path(), "gemgate.toml", &url, &anvil, &d, "127.0.0.1:0");
    succeed(gemgate(&["index", "--once"], &config), "index --once");
    let indexed = dump(&url).await;
    non_empty(&indexed);
    // Trade deals carry their creator: the transaction's sender, kept with the stored event.
    assert!(indexed["trade_deals"].iter().all(|r| r["creator"].is_string()), "{:?}", indexed["trade_deals"]);

    corrupt(&url).await;
    assert_ne!(dump(&url).await, indexed, "the corruption changed the tables");
    let out = succeed(gemgate(&["replay", "--from-store"], &config), "replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("replayed") && stdout.contains("swapped in"), "{stdout}");
    let fresh_url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    assert_same(&dump(&url).await, &fresh_index(dir.path(), &fresh_url, &anvil, &d).await, "replayed");
    assert_eq!(integer(&url, "SELECT COUNT(*) FROM rebuilds").await, 0, "nothing left in progress");

    // The journal swapped in with the tables undoes changes of blocks a reorg removes.
    traffic(&anvil, &d, 12, 6).await;
    succeed(gemgate(&["index", "--once"], &config), "index after more traffic");
    succeed(gemgate(&["replay", "--from-store"], &config), "second replay");
    anvil.reorg(3).await.unwrap();
    succeed(gemgate(&["index", "--once"], &config), "index after the reorg");
    let fresh_url = format!("sqlite://{}", dir.path().join("fresh2.db").display());
    assert_same(
        &dump(&url).await,
        &fresh_index(dir.path(), &fresh_url, &anvil, &d).await,
        "after a reorg of the replayed blocks",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_killed_three_times_resumes_to_a_fresh_index_on_postgres() {
    let test = "replay_killed_three_times_resumes_to_a_fresh_index_on_postgres";
    let Some(db) = common::postgres(test, "replaykill").await else { return };
    let Some(fresh_db) = common::postgres(test, "replaykillfresh").await else { return };
    let Some((anvil, d)) = chain(test, 3).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "gemgate.toml", &db.url, &anvil, &d, "127.0.0.1:0");
    succeed(gemgate(&["index", "--once"], &config), "index --once");
    corrupt(&db.url).await;
    let corrupted = dump(&db.url).await;
    let total = integer(&db.url, "SELECT COUNT(*) FROM events").await;
    assert!(total > 100, "enough events to kill a replay in the middle of: {total}");

    // One event per transaction, so there is a middle to kill it in.
    let replay = || {
        let mut command = gemgate(&["replay", "--from-store", "--chunk", "1"], &config);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command
    };
    let watcher = open(&db.url).await;
    for kill in 1..=3i64 {
        let mut child = KillOnDrop(replay().spawn().unwrap());
        let target = total * kill / 4;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let applied = applied(&watcher).await;
            if applied >= target {
                break;
            }
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "kill {kill}: replay ended before {target} of {total}"
            );
            assert!(Instant::now() < deadline, "kill {kill}: stuck at {applied}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let applied = applied(&watcher).await;
        assert!(applied < total, "kill {kill} landed in the middle ({applied} of {total})");
        assert_eq!(
            dump(&db.url).await,
            corrupted,
            "kill {kill}: the live tables are untouched until the swap"
        );
    }
    watcher.close().await;
    let out = replay().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming the interrupted replay"), "{stderr}");
    assert_same(&dump(&db.url).await, &fresh_index(dir.path(), &fresh_db.url, &anvil, &d).await, "resumed");
    db.drop().await;
    fresh_db.drop().await;
}

async fn applied(store: &SqlStore) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let rows = tx
        .tx()
        .fetch(
            "SELECT CAST(COALESCE(SUM(applied), 0) AS BIGINT) FROM rebuild_positions",
            Vec::new(),
            &[gemgate_projections::ColumnKind::Int],
        )
        .await
        .unwrap();
    match rows.first().map(|r| &r[0]) {
        Some(gemgate_projections::Cell::Int(n)) => *n,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_beside_a_running_service_swaps_in_atomically_on_postgres() {
    let test = "replay_beside_a_running_service_swaps_in_atomically_on_postgres";
    let Some(db) = common::postgres(test, "replaylive").await else { return };
    let Some(fresh_db) = common::postgres(test, "replaylivefresh").await else { return };
    let Some((anvil, d)) = chain(test, 2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(dir.path(), "gemgate.toml", &db.url, &anvil, &d, &listen);
    let mut service = gemgate(&["run"], &config);
    let _service = KillOnDrop(service.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let base = format!("http://{listen}");
    let head = anvil.block_number().await.unwrap();
    wait_indexed(&base, head).await;
    // The corruption deletes the first trade deal: the API lacks it until the swap, and has it after.
    let deleted = dump(&db.url).await["trade_deals"][0]["trade_deal_id"].clone();
    corrupt(&db.url).await;
    let has_deleted = move |body: &serde_json::Value| {
        body["trade_deals"].as_array().is_some_and(|rows| rows.iter().any(|r| r["trade_deal_id"] == deleted))
    };

    // The replay runs while new traffic is indexed and the API is read.
    let mut child = gemgate(&["replay", "--from-store", "--chunk", "1"], &config);
    let mut child = KillOnDrop(child.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let reads = tokio::spawn({
        let base = base.clone();
        async move {
            // Until five reads after the swap was first seen.
            let (mut answers, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(120));
            while answers.iter().filter(|(_, has)| *has).count() < 5 && Instant::now() < deadline {
                let (status, body) = get(&format!("{base}/v1/trade-deals")).await;
                answers.push((status, has_deleted(&body)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }
    });
    traffic(&anvil, &d, 13, 6).await;
    let answers = reads.await.unwrap();
    assert!(answers.iter().all(|(status, _)| *status == 200), "the API kept answering: {answers:?}");
    assert!(!answers[0].1, "the first read is of the old (corrupted) table");
    let swapped =
        answers.iter().position(|(_, has)| *has).expect("the rebuilt table is served after the swap");
    assert!(
        answers[swapped..].iter().all(|(_, has)| *has),
        "old table until the swap, the rebuilt one after it, never back: {answers:?}"
    );
    let status = child.0.wait().unwrap();
    assert!(status.success(), "replay failed");

    let head = anvil.block_number().await.unwrap();
    wait_indexed(&base, head).await;
    assert_same(&dump(&db.url).await, &fresh_index(dir.path(), &fresh_db.url, &anvil, &d).await, "live");
    drop(_service);
    db.drop().await;
    fresh_db.drop().await;
}

async fn wait_indexed(base: &str, block: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let listen = base.trim_start_matches("http://");
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {listen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let (status, body) = get(&format!("{base}/v1/status")).await;
        if status == 200 && body["chains"][0]["indexed"].as_u64() >= Some(block) {
            return;
        }
        assert!(Instant::now() < deadline, "block {block} not indexed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
