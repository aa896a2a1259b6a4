//! `gemgate replay --from-store` through the binary: projection tables deliberately corrupted are rebuilt
//! from the stored events to exactly what a fresh index of the chain gives (SQLite and Postgres); the
//! swapped-in journal still reverts a later reorg; a replay SIGKILLed three times resumes to the same
//! tables, the live tables untouched until its swap; and beside a running `gemgate run` (indexer following
//! new traffic, API answering from the old tables) it swaps in atomically.

#[path = "../../../crates/store/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
mod projections;
#[allow(dead_code)] // not every test binary uses every helper
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use gemgate_store::SqlStore;
use projections::*;
use support::{KillOnDrop, free_port, get};

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
    let fresh = fresh_index(dir.path(), &fresh_db.url, &anvil, &d).await;
    assert_same(&dump(&db.url).await, &fresh, "resumed");

    // Killed once more, then `--restart`: the interrupted work is thrown away, not resumed, and the result
    // is a fresh index all the same.
    let watcher = open(&db.url).await;
    let mut child = KillOnDrop(replay().spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied(&watcher).await < total / 2 {
        assert!(child.0.try_wait().unwrap().is_none(), "the replay ended before the middle");
        assert!(Instant::now() < deadline, "the replay is stuck");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    watcher.close().await;
    let out = gemgate(&["replay", "--from-store", "--restart"], &config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("resuming"), "--restart starts again: {stderr}");
    assert_same(&dump(&db.url).await, &fresh, "restarted");
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

/// Each event's id, name and decoded arguments, in chain order.
/// Every stored event's block and event name (empty: not decoded), in chain order.
async fn event_blocks(url: &str) -> Vec<(u64, String)> {
    let store = SqlStore::connect(url, 1, gemgate_projections::ProjectionSet::gemforce()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    use gemgate_projections::ColumnKind::{Int, Text};
    let sql = "SELECT block_number, event FROM events ORDER BY chain_id, block_number, log_index";
    let rows = tx.tx().fetch(sql, Vec::new(), &[Int, Text]).await.unwrap();
    drop(tx);
    store.close().await;
    rows.into_iter()
        .map(|r| match &r[0] {
            gemgate_projections::Cell::Int(b) => (*b as u64, r[1].as_text().unwrap_or_default().to_string()),
            other => panic!("block number {other:?}"),
        })
        .collect()
}

async fn decoded_events(url: &str) -> Vec<(String, String, serde_json::Value)> {
    let store = SqlStore::connect(url, 1, gemgate_projections::ProjectionSet::gemforce()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    use gemgate_projections::ColumnKind::{Json, Text};
    let sql = format!(
        "SELECT id, event, {} FROM events ORDER BY chain_id, block_number, log_index",
        tx.tx().dialect().read("args", Json)
    );
    let rows = tx.tx().fetch(&sql, Vec::new(), &[Text, Text, Json]).await.unwrap();
    drop(tx);
    store.close().await;
    rows.into_iter()
        .map(|r| {
            let args = match &r[2] {
                gemgate_projections::Cell::Json(v) => v.clone(),
                _ => serde_json::Value::Null,
            };
            (r[0].as_text().unwrap().to_string(), r[1].as_text().unwrap().to_string(), args)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_chain_decodes_what_an_added_abi_explains_on_sqlite() {
    let test = "replay_from_chain_decodes_what_an_added_abi_explains_on_sqlite";
    let Some((anvil, d)) = chain(test, 1).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let erc20 = dir.path().join("SampleERC20.json");
    std::fs::write(&erc20, gemgate_testkit::artifacts::Artifact::named("SampleERC20").unwrap().json).unwrap();
    let token = |name: &str, address: alloy::primitives::Address, abi: &std::path::Path| {
        format!(
            "[[contracts]]\nname = \"{name}\"\nchain = 31337\naddress = \"{address}\"\nabi = [\"{}\"]\nstart_block = {}\n",
            abi.display(),
            d.start_block
        )
    };
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    // First USDC without its ABI (its logs are stored raw), then with it, and the VABB token added too.
    let before = config(dir.path(), "before.toml", &url, &anvil, &d, "127.0.0.1:0");
    std::fs::write(&before, std::fs::read_to_string(&before).unwrap() + &token("usdc", d.usdc, &empty))
        .unwrap();
    succeed(gemgate(&["index", "--once"], &before), "index without the ABI");
    let raw = decoded_events(&url).await;
    assert!(raw.iter().any(|(_, event, _)| event.is_empty()), "USDC's logs are stored undecoded");
    let outbox_before = integer(&url, "SELECT COUNT(*) FROM outbox").await;

    let after = config(dir.path(), "after.toml", &url, &anvil, &d, "127.0.0.1:0");
    let tokens = token("usdc", d.usdc, &erc20) + &token("vabb", d.vabb, &erc20);
    std::fs::write(&after, std::fs::read_to_string(&after).unwrap() + &tokens).unwrap();
    // `--from-block M` first: only the logs from block M on are fetched and decoded again.
    let blocks = event_blocks(&url).await;
    let undecoded: Vec<u64> = blocks.iter().filter(|(_, event)| event.is_empty()).map(|(b, _)| *b).collect();
    let middle = undecoded[undecoded.len() / 2];
    assert!(undecoded.first() < Some(&middle), "raw logs on both sides of block {middle}");
    let out = succeed(
        gemgate(&["replay", "--from-chain", "--from-block", &middle.to_string()], &after),
        "replay --from-chain --from-block",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("blocks {middle}..=")),
        "the range starts there"
    );
    for (block, event) in event_blocks(&url).await {
        if block < middle && undecoded.contains(&block) {
            assert!(event.is_empty(), "block {block} is below --from-block: left as it was");
        }
        if block >= middle {
            assert!(!event.is_empty(), "block {block} is decoded again with the new ABI");
        }
    }

    let out = succeed(gemgate(&["replay", "--from-chain"], &after), "replay --from-chain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fetched and decoded again") && stdout.contains("swapped in"), "{stdout}");

    // The same events, ids and decoding as a fresh index with the ABIs configured now.
    let fresh_url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let fresh_config = config(dir.path(), "fresh.toml", &fresh_url, &anvil, &d, "127.0.0.1:0");
    std::fs::write(&fresh_config, std::fs::read_to_string(&fresh_config).unwrap() + &tokens).unwrap();
    succeed(gemgate(&["index", "--once"], &fresh_config), "fresh index");
    let (refreshed, fresh) = (decoded_events(&url).await, decoded_events(&fresh_url).await);
    assert_eq!(refreshed.len(), fresh.len());
    assert_eq!(refreshed, fresh, "refreshed events == a fresh index's");
    assert!(refreshed.iter().all(|(_, event, _)| !event.is_empty()), "every log decodes now");
    assert_same(&dump(&url).await, &dump(&fresh_url).await, "projections");
    let vabb_logs = (refreshed.len() - raw.len()) as i64;
    assert!(vabb_logs > 0, "the added contract had logs");
    assert_eq!(
        integer(&url, "SELECT COUNT(*) FROM outbox").await,
        outbox_before + vabb_logs,
        "an outbox row for each newly found event only"
    );
}
