//! `gemgate bench snapshot`: a contract-state snapshot of 10,000 keys (one `carbonCreditBalance` view each,
//! the keys being the `carbon_credits` projection indexed from anvil) run by `gemgate snapshot run` (this
//! binary, its own process) through Multicall3 batches, beside the same 10,000 calls made one `eth_call` at a
//! time with alloy at the same block, in the same run. Every snapshot row is checked against alloy's answer.

use std::time::Instant;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::CarbonCreditFacet;
use gemgate_testkit::{AnvilOptions, deploy_gemforce, find_anvil};

use crate::{gemgate_process, machine, rate};

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotBench {
    /// Keys (tokens with credits), one view call each.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Calls per Multicall3 batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

pub async fn run(bench: SnapshotBench) -> anyhow::Result<()> {
    println!("gemgate bench snapshot: {} keys, batches of {}; {}", bench.keys, bench.batch, machine());
    let binary = find_anvil().await.context("finding anvil")?;
    // Base fee 0: twenty thousand mints fill a hundred blocks, and a rising base fee would strand the later
    // ones (their fee caps are set when they are sent).
    let options =
        AnvilOptions { extra_args: vec!["--base-fee".into(), "0".into()], ..AnvilOptions::default() };
    let anvil = gemgate_testkit::Anvil::start_binary(&binary, &options, 0).await?;
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await?;
    let setup = Instant::now();
    let holders: Vec<Address> =
        (1..=bench.keys as u64).map(|i| Address::left_padding_from(&i.to_be_bytes())).collect();
    // A thousand at a time: anvil mines a pool of ten thousand pending transactions far more slowly.
    let mut tokens = Vec::with_capacity(holders.len());
    for chunk in holders.chunks(1_000) {
        tokens.extend(
            gemgate_testkit::relay::mint_many_with_credits(&provider, d.diamond, d.owner, chunk, 7).await?,
        );
    }
    println!(
        "  setup: {} tokens with credits minted in {:.1} s",
        tokens.len(),
        setup.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n[calls]\nmax_batch = {batch}\n[[chains]]\nid = {id}\nrpc = [\"{rpc}\"]\n\
             [[contracts]]\nname = \"gemforce\"\nchain = {id}\naddress = \"{diamond}\"\ndiamond = true\nstart_block = {start}\n\
             [[snapshots]]\nname = \"credits\"\ncontract = \"gemforce\"\nfunction = \"carbonCreditBalance\"\n\
             keys = {{ table = \"carbon_credits\", column = \"token_id\" }}\nblock = \"latest\"\nbatch = {batch}\n",
            batch = bench.batch,
            id = anvil.chain_id(),
            rpc = anvil.endpoint(),
            diamond = d.diamond,
            start = d.start_block
        ),
    )?;
    gemgate_process(&["index", "--once"], &config).await?;

    let (elapsed, peak_rss_kb) = gemgate_process(&["snapshot", "run", "credits"], &config).await?;
    let store = SqlStore::connect(&url, 1, ProjectionSet::gemforce()).await?;
    let runs = gemgate_domain::ports::StateSnapshots::state_runs(&store, Some("credits"), 1).await?;
    let run = runs.first().context("no snapshot run recorded")?;
    anyhow::ensure!(run.state == "complete", "the run ended {}: {:?}", run.state, run.error);
    anyhow::ensure!(run.stats.rows == bench.keys as u64, "{} rows, expected {}", run.stats.rows, bench.keys);
    let snapshot_rate = rate(run.stats.calls, std::time::Duration::from_millis(run.stats.duration_ms.max(1)));
    println!(
        "  gemgate snapshot run   {snapshot_rate:>9.0} calls/s ({} calls in {} Multicall3 batches, {:.2} s in the run, \
         {:.2} s for the process, peak RSS {:.0} MB)",
        run.stats.calls,
        run.stats.batches,
        run.stats.duration_ms as f64 / 1e3,
        elapsed.as_secs_f64(),
        peak_rss_kb as f64 / 1024.0
    );

    // The same calls at the same block, one eth_call at a time.
    let carbon = CarbonCreditFacet::new(d.diamond, provider.clone());
    let block: alloy::eips::BlockId = run.block_hash.into();
    let started = Instant::now();
    let mut answers = Vec::with_capacity(tokens.len());
    for token in &tokens {
        answers.push(carbon.carbonCreditBalance(*token).block(block).call().await?);
    }
    let alloy_time = started.elapsed();
    let alloy_rate = rate(tokens.len() as u64, alloy_time);
    println!(
        "  alloy, one eth_call at a time {alloy_rate:>9.0} calls/s ({:.2} s)   snapshot / alloy: {:.1}x",
        alloy_time.as_secs_f64(),
        snapshot_rate / alloy_rate
    );
    let mut checked = 0;
    for (token, answer) in tokens.iter().zip(&answers) {
        let row = store_value(&store, *token).await?;
        anyhow::ensure!(row == answer.to_string(), "token {token}: snapshot {row}, node {answer}");
        checked += 1;
    }
    println!("  every row equals the node's answer ({checked} checked)");
    Ok(())
}

async fn store_value(store: &SqlStore, token: U256) -> anyhow::Result<String> {
    let mut tx = store.begin().await?;
    let key = serde_json::json!([token.to_string()]).to_string();
    let sql = format!("SELECT value FROM snapshot_credits WHERE key = {}", tx.tx().dialect().param(1));
    let rows = tx
        .tx()
        .fetch(&sql, vec![gemgate_store::Bind::text(key)], &[gemgate_projections::ColumnKind::Json])
        .await?;
    let value = match rows.first().map(|r| &r[0]) {
        Some(gemgate_projections::Cell::Json(v)) => v.as_object().and_then(|o| o.values().next()).cloned(),
        _ => None,
    };
    Ok(value.and_then(|v| v.as_str().map(String::from)).unwrap_or_default())
}
