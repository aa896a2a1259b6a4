//! `gemgate index`: backfill with progress (blocks/s, events/s, ETA; a live line on a terminal, plain log
//! lines otherwise), then exit (`--once`) or keep following the chain.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use gemgate_config::Settings;
use gemgate_indexer::StepOutcome;
use gemgate_telemetry::Metrics;

use gemgate_wiring as wiring;

/// Plain progress lines are written at most this often when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub async fn run(settings: &Settings, once: bool) -> anyhow::Result<()> {
    let store = wiring::open_store(settings).await?;
    let metrics = Metrics::new();
    if !once {
        return wiring::run_service(
            settings,
            store,
            metrics,
            wiring::Parts { index: true, ..wiring::Parts::NONE },
        )
        .await;
    }
    let indexers = wiring::indexers(settings, &store, &metrics).await?;
    if indexers.is_empty() {
        anyhow::bail!("nothing to index: configure [[chains]] and [[contracts]]");
    }
    let terminal = std::io::stderr().is_terminal();
    for mut indexer in indexers {
        let start_cursor = indexer.cursor().await?.map(|c| c.number);
        let chain = indexer.chain_id();
        let head = indexer.chain_head().await?;
        let started = Instant::now();
        let first = start_cursor.map_or(0, |c| c + 1);
        let mut progress =
            Progress { chain, head, first, started, last_print: started, blocks: 0, events: 0, terminal };
        indexer.catch_up(|outcome| progress.update(outcome)).await?;
        progress.finish();
    }
    Ok(())
}

struct Progress {
    chain: u64,
    head: u64,
    first: u64,
    started: Instant,
    last_print: Instant,
    blocks: u64,
    events: u64,
    terminal: bool,
}

impl Progress {
    fn update(&mut self, outcome: &StepOutcome) {
        match outcome {
            StepOutcome::Committed { from, to, events } => {
                self.blocks += to + 1 - from;
                self.events += *events as u64;
                self.head = self.head.max(*to);
                let now = Instant::now();
                if self.terminal || now.duration_since(self.last_print) >= LOG_EVERY {
                    self.last_print = now;
                    self.print(*to, false);
                }
            }
            StepOutcome::Reverted { ancestor, events_removed } => {
                eprintln!(
                    "chain {}: reorg: reverted to block {ancestor} ({events_removed} events removed)",
                    self.chain
                );
            }
            _ => {}
        }
    }

    fn print(&self, at: u64, done: bool) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let blocks_per_s = self.blocks as f64 / elapsed;
        let events_per_s = self.events as f64 / elapsed;
        let total = self.head.saturating_sub(self.first) + 1;
        let percent = if total == 0 {
            100.0
        } else {
            100.0 * (at.saturating_sub(self.first) + 1) as f64 / total as f64
        };
        let eta = if blocks_per_s > 0.0 { self.head.saturating_sub(at) as f64 / blocks_per_s } else { 0.0 };
        let line = format!(
            "chain {}: block {at}/{} ({percent:.1}%), {blocks_per_s:.0} blocks/s, {events_per_s:.0} events/s, {} events, ETA {eta:.0}s",
            self.chain, self.head, self.events
        );
        if self.terminal && !done {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}{line}", if self.terminal { "\r" } else { "" });
        }
    }

    fn finish(&self) {
        let at = self.head;
        self.print(at, true);
        eprintln!(
            "chain {}: caught up at block {at}: {} blocks, {} events in {:.1} s",
            self.chain,
            self.blocks,
            self.events,
            self.started.elapsed().as_secs_f64()
        );
    }
}
