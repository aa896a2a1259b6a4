//! `gemgate index --once` killed with SIGKILL at random moments during backfill, twenty times, then run to
//! the end: the database holds exactly the chain's logs, no gap, no duplicate, one outbox row per event.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use gemgate_domain::ports::Store;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_store::read::EventQuery;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::{AnvilOptions, SplitMix64, anvil_or_skip, build_log_chain};

const KILLS: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_without_gap_or_duplicate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    killed_backfill(&url, dir.path(), "killed_backfill_resumes_without_gap_or_duplicate_on_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_without_gap_or_duplicate_on_postgres() {
    let test = "killed_backfill_resumes_without_gap_or_duplicate_on_postgres";
    let admin = std::env::var("GEMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into());
    let server = match SqlStore::connect(&admin, 1, ProjectionSet::default()).await {
        Ok(server) => server,
        Err(e) if gemgate_testkit::under_ci() => {
            panic!("Postgres unreachable under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: Postgres at {admin} unreachable ({e})");
            return;
        }
    };
    let name = format!("gemgate_crash_{}", std::process::id());
    server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    server.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    killed_backfill(&url, dir.path(), test).await;
    server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}

async fn killed_backfill(url: &str, dir: &std::path::Path, test: &str) {
    let Some(anvil) =
        anvil_or_skip(test, AnvilOptions { accounts: 2, ..AnvilOptions::default() }).await.unwrap()
    else {
        return;
    };
    let chain = build_log_chain(&anvil, 4_000, 80_000).await.unwrap();
    let abi = dir.join("LogSpammer.json");
    std::fs::write(&abi, Artifact::named("LogSpammer").unwrap().json).unwrap();
    let config = dir.join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n[[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\n\
             [[contracts]]\nname = \"spammer\"\nchain = 31337\naddress = \"{address}\"\nabi = [\"{abi}\"]\nstart_block = {start}\n",
            rpc = anvil.endpoint(),
            address = chain.address,
            abi = abi.display(),
            start = chain.start_block
        ),
    )
    .unwrap();
    let index = || {
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "index", "--once", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    let mut rng = SplitMix64::new(20);
    let mut mid_backfill = 0;
    let mut cursors = Vec::new();
    for _ in 0..KILLS {
        let mut child = index();
        // The first run also migrates; give it a little longer before the first kill can land.
        tokio::time::sleep(Duration::from_millis(rng.range(40, 400))).await;
        child.kill().unwrap(); // SIGKILL: no destructor, no rollback hook, mid-anything.
        child.wait().unwrap();
        let store = SqlStore::connect(url, 1, ProjectionSet::default()).await.unwrap();
        // A kill can land during the first run's migrations: applying them here must recover from that.
        store.migrate().await.unwrap();
        let cursor = store.cursor(31337).await.unwrap().map_or(0, |c| c.number);
        store.close().await;
        if cursor < chain.end_block {
            mid_backfill += 1;
        }
        cursors.push(cursor);
    }
    assert!(
        mid_backfill >= KILLS / 2,
        "only {mid_backfill} of {KILLS} kills landed during backfill: {cursors:?}"
    );

    let last = Command::new(env!("CARGO_BIN_EXE_gemgate"))
        .args(["--log-filter", "warn", "index", "--once", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(last.status.success(), "the final run must complete: {}", String::from_utf8_lossy(&last.stderr));

    let provider = anvil.provider();
    let logs = provider
        .get_logs(
            &Filter::new().address(chain.address).from_block(chain.start_block).to_block(chain.end_block),
        )
        .await
        .unwrap();
    let store = SqlStore::connect(url, 1, ProjectionSet::default()).await.unwrap();
    let mut stored = Vec::new();
    let mut after = None;
    loop {
        let page = store.events(&EventQuery { after, limit: 1_000, ..EventQuery::default() }).await.unwrap();
        stored.extend(page.events);
        match page.next {
            Some(next) => {
                let p: Vec<u64> = next.split(':').map(|x| x.parse().unwrap()).collect();
                after = Some((p[0], p[1], p[2]));
            }
            None => break,
        }
    }
    assert_eq!(stored.len(), logs.len(), "no gap and no duplicate (killed at cursors {cursors:?})");
    for (event, log) in stored.iter().zip(&logs) {
        assert_eq!(
            (event.block_number, event.log_index),
            (log.block_number.unwrap(), log.log_index.unwrap())
        );
        assert_eq!(event.block_hash, log.block_hash.unwrap());
        assert_eq!(event.tx_hash, log.transaction_hash.unwrap());
        assert_eq!(event.topics, log.topics().to_vec());
        assert_eq!(event.data, log.inner.data.data);
    }
    let outbox = store.outbox_statuses(31337).await.unwrap();
    let ids: BTreeSet<&String> = outbox.iter().map(|(id, _)| id).collect();
    assert_eq!(outbox.len(), stored.len(), "one outbox row per event, written in the same transaction");
    assert_eq!(ids.len(), stored.len(), "no outbox row twice");
    store.close().await;
}
