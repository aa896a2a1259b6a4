//! `gemgate replay`: rebuild the projection tables beside the live ones and swap them in atomically, with
//! progress (a live line on a terminal, plain lines otherwise); a killed replay resumes where it stopped.
//! `--from-chain` first fetches and decodes the stored blocks' logs again (after an ABI or a contract was
//! added), range by range, then rebuilds from the refreshed events.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use gemgate_config::Settings;
use gemgate_store::rebuild::{RebuildOptions, RebuildProgress};

use gemgate_wiring as wiring;

/// Plain progress lines are written at most this often when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Re-apply the stored events (no chain needed).
    #[arg(long, required_unless_present = "from_chain", conflicts_with = "from_chain")]
    pub from_store: bool,
    /// Fetch and decode the indexed blocks' logs again with the ABIs configured now, then rebuild.
    #[arg(long)]
    pub from_chain: bool,
    /// With --from-chain: the first block to fetch again (default: the earliest contract's start_block).
    #[arg(long, requires = "from_chain")]
    pub from_block: Option<u64>,
    /// Throw away an interrupted replay's work instead of resuming it.
    #[arg(long)]
    pub restart: bool,
    /// Events applied per database transaction (and the most held in memory at once).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chunk: u64,
}

pub async fn run(settings: &Settings, args: &ReplayArgs) -> anyhow::Result<()> {
    let store = wiring::open_store(settings).await?;
    if args.from_chain {
        refetch(settings, &store, args.from_block).await?;
    }
    let options = RebuildOptions { restart: args.restart, chunk: args.chunk as usize };
    if let Some(interrupted) = store.rebuild_in_progress().await?
        && !args.restart
    {
        eprintln!(
            "resuming the interrupted replay: {} of {} events applied (pass --restart to start again)",
            interrupted.applied, interrupted.total
        );
    }
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_print = started;
    let mut first: Option<u64> = None;
    let summary = store
        .rebuild_projections(options, |p: &RebuildProgress| {
            let already = *first.get_or_insert(p.applied.saturating_sub(options.chunk as u64));
            let now = Instant::now();
            if !terminal && now.duration_since(last_print) < LOG_EVERY {
                return;
            }
            last_print = now;
            let rate = (p.applied - already) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let percent = if p.total == 0 { 100.0 } else { 100.0 * p.applied as f64 / p.total as f64 };
            let eta = if rate > 0.0 { p.total.saturating_sub(p.applied) as f64 / rate } else { 0.0 };
            let line = format!(
                "chain {}: block {}: {}/{} events ({percent:.1}%), {rate:.0} events/s, ETA {eta:.0}s",
                p.chain_id, p.block, p.applied, p.total
            );
            if terminal {
                eprint!("\r{line}\x1b[K");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        })
        .await?;
    if terminal {
        eprintln!();
    }
    let resumed = summary.resumed_at.map(|n| format!(" (resumed after {n})")).unwrap_or_default();
    println!(
        "replayed {} events{resumed} into {} projection tables in {:.1} s; swapped in ({} applied at the swap)",
        summary.applied,
        summary.tables,
        started.elapsed().as_secs_f64(),
        summary.at_swap
    );
    Ok(())
}

/// Each chain's indexed blocks fetched and decoded again, up to its cursor.
async fn refetch(
    settings: &Settings,
    store: &gemgate_store::SqlStore,
    from_block: Option<u64>,
) -> anyhow::Result<()> {
    use gemgate_domain::ports::Store;
    for (refetch, start) in wiring::refetchers(settings, store, &gemgate_telemetry::Metrics::new())? {
        let chain = refetch.chain_id;
        let Some(cursor) = store.cursor(chain).await? else {
            eprintln!("chain {chain}: nothing indexed yet; nothing to fetch again");
            continue;
        };
        let from = from_block.unwrap_or(start);
        let started = Instant::now();
        let mut last_print = started;
        let done = refetch
            .run(from, cursor.number, |p| {
                if last_print.elapsed() >= LOG_EVERY || p.block == p.last {
                    last_print = Instant::now();
                    eprintln!(
                        "chain {chain}: fetched again to block {}/{}: {} events decoded again, {} new",
                        p.block, p.last, p.updated, p.inserted
                    );
                }
            })
            .await?;
        println!(
            "chain {chain}: blocks {from}..={} fetched and decoded again in {:.1} s: {} stored events, {} new",
            done.last,
            started.elapsed().as_secs_f64(),
            done.updated,
            done.inserted
        );
    }
    Ok(())
}
