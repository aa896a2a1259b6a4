//! `gemgate bench replay`: the indexing benchmark's synthetic chain (200,000 logs by default) backfilled by
//! `gemgate index --once`, then rebuilt by `gemgate replay --from-store`, both as processes of this binary,
//! into SQLite and Postgres: events/s of the replay beside the backfill of the same run, and peak RSS.

use anyhow::Context;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::{Anvil, AnvilOptions, build_log_chain, find_anvil};

use crate::{
    Workload, bench_config, count_events, create_pg_database, drop_pg_database, gemgate_process, machine,
    rate, sqlite_url,
};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayBench {
    #[command(flatten)]
    workload: Workload,
}

pub async fn run(args: ReplayBench) -> anyhow::Result<()> {
    let bench = &args.workload;
    println!("gemgate bench replay: {} blocks, {} logs; {}", bench.blocks, bench.logs, machine());
    let binary = find_anvil().await?;
    let anvil =
        Anvil::start_binary(&binary, &AnvilOptions { accounts: 2, ..AnvilOptions::default() }, 0).await?;
    let chain =
        build_log_chain(&anvil, bench.blocks, bench.logs).await.context("building the synthetic chain")?;
    let dir = tempfile::tempdir()?;
    let abi_path = dir.path().join("LogSpammer.json");
    std::fs::write(&abi_path, Artifact::named("LogSpammer")?.json)?;

    let mut targets = vec![("SQLite", sqlite_url(dir.path(), "replay"), None)];
    if bench.postgres != "none" {
        match create_pg_database(&bench.postgres, "replay").await {
            Ok((url, name)) => targets.push(("Postgres", url, Some(name))),
            Err(e) => println!("  (Postgres skipped: {e:#})"),
        }
    }
    for (name, url, _) in &targets {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, bench_config(url, &anvil, &chain, &abi_path))?;
        let (backfill, backfill_rss) = gemgate_process(&["index", "--once"], &config).await?;
        let events = count_events(url).await?;
        anyhow::ensure!(events == chain.logs, "{name}: indexed {events} events, expected {}", chain.logs);
        let (replay, replay_rss) = gemgate_process(&["replay", "--from-store"], &config).await?;
        let (backfill_rate, replay_rate) = (rate(events, backfill), rate(events, replay));
        println!(
            "  {name:<8} backfill {backfill_rate:>9.0} events/s ({:.2} s, peak RSS {:.0} MB)   \
             replay --from-store {replay_rate:>9.0} events/s ({:.2} s, peak RSS {:.0} MB)   {:.1}x",
            backfill.as_secs_f64(),
            backfill_rss as f64 / 1024.0,
            replay.as_secs_f64(),
            replay_rss as f64 / 1024.0,
            replay_rate / backfill_rate
        );
    }
    for (_, _, database) in targets {
        if let Some(name) = database {
            drop_pg_database(&bench.postgres, &name).await;
        }
    }
    Ok(())
}
