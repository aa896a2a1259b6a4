//! `gemgate snapshot`: contract-state snapshots run now (`run NAME`, as `gemgate run` does on their
//! schedule), and verifiable projection snapshots (`export`, `import`) to start a database (SQLite or
//! Postgres, either way round) from another's state instead of indexing the chain from its start.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use anyhow::Context;
use gemgate_config::Settings;
use gemgate_domain::ports::ChainSource;
use gemgate_store::snapshot::SnapshotSummary;
use gemgate_telemetry::Metrics;

use gemgate_wiring as wiring;

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Run a `[[snapshots]]` entry now: its view function for every key at one pinned block, in Multicall3
    /// batches, into its table; prints the run (block, rows, calls, batches, duration).
    Run {
        /// The snapshot's name.
        name: String,
    },
    /// The recent runs of the `[[snapshots]]` entries (or of one), newest first, as JSON.
    Runs {
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Write every projection table, the reorg window, the undo journal and each chain's cursor, with a
    /// sha256 digest, read in one consistent transaction (the indexer may keep running).
    Export {
        /// The file to write (JSON lines).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Load a snapshot into an empty database: the digest is checked, and each chain's block must still be
    /// canonical on the configured node; indexing then resumes from that block.
    Import {
        /// A file written by `gemgate snapshot export`.
        file: PathBuf,
    },
}

pub async fn run(settings: &Settings, command: &SnapshotCommand) -> anyhow::Result<()> {
    let store = wiring::open_store(settings).await?;
    match command {
        SnapshotCommand::Run { name } => {
            let jobs = wiring::snapshot_jobs(settings, &store, &Metrics::new())?;
            let names: Vec<&str> = jobs.iter().map(|j| j.spec().name.as_str()).collect();
            let job = jobs.iter().find(|j| j.spec().name == *name).with_context(|| {
                format!("no snapshot named {name:?} is configured (configured: {})", names.join(", "))
            })?;
            let mut last = std::time::Instant::now();
            let run = job
                .run(|p| {
                    if last.elapsed() >= std::time::Duration::from_secs(2) {
                        last = std::time::Instant::now();
                        eprintln!("snapshot {name}: {} rows at block {}", p.rows, p.block.number);
                    }
                })
                .await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
        }
        SnapshotCommand::Runs { name, limit } => {
            use gemgate_domain::ports::StateSnapshots;
            let runs = store.state_runs(name.as_deref(), *limit).await?;
            println!("{}", serde_json::to_string_pretty(&runs)?);
        }
        SnapshotCommand::Export { out } => {
            let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
            let mut writer = BufWriter::new(file);
            let summary = store.export_snapshot(&mut writer).await?;
            println!("exported {} records to {}", summary.records, out.display());
            describe(&summary);
        }
        SnapshotCommand::Import { file } => {
            let open = || -> anyhow::Result<BufReader<std::fs::File>> {
                let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
                Ok(BufReader::new(f))
            };
            // Checked before the database is touched; checked again as the records go in.
            let verified = gemgate_store::snapshot::verify(&mut open()?)
                .with_context(|| format!("{} is not a valid snapshot", file.display()))?;
            still_canonical(settings, &verified).await?;
            let summary = store.import_snapshot(&mut open()?).await.context("importing the snapshot")?;
            println!("imported {} records from {}", summary.records, file.display());
            describe(&summary);
            println!("indexing resumes from there: gemgate run (or gemgate index) with this configuration");
        }
    }
    Ok(())
}

fn describe(summary: &SnapshotSummary) {
    println!("  digest sha256:{}", summary.digest);
    for chain in &summary.header.chains {
        println!(
            "  chain {}: block {} {} (finalized {})",
            chain.chain_id, chain.block_number, chain.block_hash, chain.finalized
        );
    }
}

/// Each chain's cursor block is still on the configured node's canonical chain.
async fn still_canonical(settings: &Settings, summary: &SnapshotSummary) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    for cursor in &summary.header.chains {
        let chain = settings.chains.iter().find(|c| c.id == cursor.chain_id).with_context(|| {
            format!(
                "the snapshot holds chain {}, which is not configured: add a [[chains]] entry",
                cursor.chain_id
            )
        })?;
        let block = wiring::source(chain, &metrics)
            .block(cursor.block_number)
            .await
            .with_context(|| format!("reading block {} of chain {}", cursor.block_number, cursor.chain_id))?;
        let canonical = block.map(|b| b.hash.to_string());
        anyhow::ensure!(
            canonical.as_deref() == Some(cursor.block_hash.as_str()),
            "chain {}: the snapshot's block {} ({}) is no longer canonical (the node has {}); export again from a \
             database that has followed the chain past the reorg",
            cursor.chain_id,
            cursor.block_number,
            cursor.block_hash,
            canonical.unwrap_or_else(|| "no such block".into())
        );
    }
    Ok(())
}
