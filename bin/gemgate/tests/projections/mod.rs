//! Shared by the replay and snapshot tests: the demo's chain with its traffic, a config for it, the
//! binary as a process, and projection tables dumped and compared table by table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alloy::primitives::U256;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::{ClaimTopicsRegistryFacet, TradeDealFacet};
use gemgate_testkit::{
    Anvil, AnvilOptions, Deployment, Scenario, ScenarioOptions, anvil_or_skip, deploy_gemforce,
};

/// anvil with the sample contracts and `rounds` of the scenario's traffic.
pub async fn chain(test: &str, rounds: u32) -> Option<(Anvil, Deployment)> {
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
pub async fn traffic(anvil: &Anvil, d: &Deployment, tag: u64, blocks: u64) {
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
pub fn config(dir: &Path, name: &str, url: &str, anvil: &Anvil, d: &Deployment, listen: &str) -> PathBuf {
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

pub fn gemgate(args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gemgate"));
    command.args(["--log-filter", "warn"]).args(args).arg("--config").arg(config);
    command
}

pub fn succeed(mut command: Command, what: &str) -> Output {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub async fn open(url: &str) -> SqlStore {
    SqlStore::connect(url, 2, ProjectionSet::gemforce()).await.unwrap()
}

/// Every projection table's rows.
pub async fn dump(url: &str) -> Dump {
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
pub async fn fresh_index(dir: &Path, url: &str, anvil: &Anvil, d: &Deployment) -> Dump {
    let config = config(dir, "fresh.toml", url, anvil, d, "127.0.0.1:0");
    succeed(gemgate(&["index", "--once"], &config), "the fresh index");
    dump(url).await
}

/// Damage three tables the way a bad migration or a hand edit would: a changed owner, a deleted trade
/// deal, and a phantom listing.
pub async fn corrupt(url: &str) {
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

pub type Dump = BTreeMap<&'static str, Vec<serde_json::Value>>;

/// Two dumps are equal, table by table; a difference names the table and its first differing row.
pub fn assert_same(actual: &Dump, expected: &Dump, context: &str) {
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

pub fn non_empty(dump: &Dump) {
    for table in ["trade_deals", "gemforce_tokens", "listings", "carbon_credits", "identities"] {
        assert!(!dump[table].is_empty(), "the scenario fills {table}");
    }
}

pub async fn integer(url: &str, sql: &str) -> i64 {
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
