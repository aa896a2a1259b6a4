//! `gemgate bench index`: builds a large synthetic chain on anvil and measures, in the same run and on
//! the same machine: the raw RPC ceiling (fetch every log and discard it), the bulk-load ceiling (the same
//! rows written straight into the store, no RPC), a real backfill into SQLite and into Postgres (the
//! `gemgate index --once` process: events/s and its peak RSS), and live latency (block mined to row
//! committed, p50/p95). Run it from a release build: `cargo run --release -p gemgate -- bench index`.
//! `GEMGATE_BENCH_LOG=<filter>` (e.g. `warn,gemgate_indexer=debug`) shows the backfill processes' logs,
//! with each batch's commit time.

mod call;
pub(crate) mod chaos;
mod deliver;
mod failover;
mod fleet;
mod relay;
mod replay;
mod share;
mod snapshot;
pub mod tools;
mod txm;

pub use fleet::{LogKey, chain_logs, stored_events, stored_logs};

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use gemgate_chain::{EvmChain, RetryPolicy};
use gemgate_domain::BlockRef;
use gemgate_domain::ports::{Batch, ChainSource, LogQuery, RawLog, Store};
use gemgate_projections::{ContractAbi, Decoder, ProjectionSet};
use gemgate_store::SqlStore;
use gemgate_store::read::EventQuery;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::{Anvil, AnvilOptions, SyntheticChain, build_log_chain, find_anvil};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum BenchWhat {
    /// Indexing throughput, memory and live latency.
    Index(IndexBench),
    /// Delivery into RabbitMQ beside the broker's raw publish rate, and block-to-broker latency.
    Deliver(deliver::DeliverBench),
    /// Transaction manager requests/s from accepted to included, beside a plain alloy loop.
    Txm(txm::TxmBench),
    /// View calls through POST /v1/call (cached, uncached, batched) beside eth_call straight to the node.
    Call(call::CallBench),
    /// Signed meta-transactions through POST /v1/relay beside POST /v1/transactions, accepted to included.
    Relay(relay::RelayBench),
    /// `gemgate replay --from-store` of the indexing workload beside its original backfill.
    Replay(replay::ReplayBench),
    /// A contract-state snapshot of 10,000 keys through Multicall3 beside one eth_call at a time with alloy.
    Snapshot(snapshot::SnapshotBench),
    /// Indexer leader failover on Postgres: the leader killed or paused again and again, the time to the
    /// first commit by a standby (median, max), and the events table checked against the chain.
    Failover(failover::FailoverBench),
    /// Three `gemgate run` processes on Postgres and RabbitMQ under random SIGKILLs, SIGSTOPs and reorgs:
    /// the database, the broker and the nonces checked against the chain at the end.
    Chaos(chaos::ChaosBench),
    /// Two sinks delivered by one `gemgate dispatch` process, then by two sharing them, in the same run.
    Share(share::ShareBench),
}

/// The synthetic chain of the indexing benchmarks and the Postgres server they use.
#[derive(Debug, Clone, clap::Args)]
struct Workload {
    /// Blocks in the synthetic chain.
    #[arg(long, default_value_t = 10_000)]
    blocks: u64,
    /// Logs in the synthetic chain (from one contract).
    #[arg(long, default_value_t = 200_000)]
    logs: u64,
    /// Postgres server for the Postgres runs (a database is created and dropped); "none" skips them.
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
}

#[derive(Debug, Clone, clap::Args)]
struct IndexBench {
    #[command(flatten)]
    workload: Workload,
    /// Blocks measured for live latency.
    #[arg(long, default_value_t = 50)]
    latency_blocks: u32,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Index(bench) => index(bench).await,
        BenchWhat::Deliver(bench) => deliver::run(bench).await,
        BenchWhat::Txm(bench) => txm::run(bench).await,
        BenchWhat::Call(bench) => call::run(bench).await,
        BenchWhat::Relay(bench) => relay::run(bench).await,
        BenchWhat::Replay(bench) => replay::run(bench).await,
        BenchWhat::Snapshot(bench) => snapshot::run(bench).await,
        BenchWhat::Failover(bench) => failover::run(bench).await,
        BenchWhat::Chaos(bench) => chaos::run(bench).await,
        BenchWhat::Share(bench) => share::run(bench).await,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile =
        if cfg!(debug_assertions) { "DEBUG build (numbers are not representative)" } else { "release build" };
    format!("{cores} cores, {cpu}, {profile}")
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn index(args: IndexBench) -> anyhow::Result<()> {
    let bench = &args.workload;
    println!("gemgate bench index: {} blocks, {} logs; {}", bench.blocks, bench.logs, machine());
    let binary = find_anvil().await?;
    // A big block gas limit is not needed (100 logs per transaction); automine, many accounts not needed.
    let anvil =
        Anvil::start_binary(&binary, &AnvilOptions { accounts: 2, ..AnvilOptions::default() }, 0).await?;
    let built = Instant::now();
    let chain =
        build_log_chain(&anvil, bench.blocks, bench.logs).await.context("building the synthetic chain")?;
    println!(
        "  chain built in {:.1} s: blocks {}..={}, {} logs from {}",
        built.elapsed().as_secs_f64(),
        chain.start_block,
        chain.end_block,
        chain.logs,
        chain.address
    );
    let dir = tempfile::tempdir()?;
    let abi_path = dir.path().join("LogSpammer.json");
    std::fs::write(&abi_path, Artifact::named("LogSpammer")?.json)?;

    // 1. Raw RPC ceiling: the same client, ranges and concurrency as the indexer, logs discarded after counting.
    let source = EvmChain::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse()?, anvil.endpoint())],
        RetryPolicy::default(),
    );
    let span = (bench.blocks * 5_000 / bench.logs.max(1)).clamp(1, 10_000);
    let started = Instant::now();
    let logs = fetch_all(&source, &chain, span).await?;
    let rpc_time = started.elapsed();
    anyhow::ensure!(logs.len() as u64 == chain.logs, "fetched {} logs, expected {}", logs.len(), chain.logs);
    let rpc_rate = rate(chain.logs, rpc_time);
    println!(
        "  raw RPC ceiling         {rpc_rate:>10.0} logs/s   ({:.2} s, eth_getLogs, {span}-block ranges, 4 concurrent)",
        rpc_time.as_secs_f64()
    );

    let decoder = decoder(&anvil, &chain, &abi_path)?;
    let postgres = (bench.postgres != "none").then_some(bench.postgres.as_str());

    // 2. Bulk-load ceilings.
    let mut ceilings =
        vec![("SQLite", bulk_load(&sqlite_url(dir.path(), "bulk"), &decoder, &logs, &chain).await?)];
    let mut pg_databases = Vec::new();
    if let Some(admin) = postgres {
        match create_pg_database(admin, "bulk").await {
            Ok((url, name)) => {
                pg_databases.push(name);
                ceilings.push(("Postgres", bulk_load(&url, &decoder, &logs, &chain).await?));
            }
            Err(e) => println!("  (Postgres skipped: {e:#})"),
        }
    }
    for (name, (events, elapsed)) in &ceilings {
        println!(
            "  bulk-load ceiling {name:<8}{:>10.0} events/s ({:.2} s, decoded rows committed, no RPC)",
            rate(*events, *elapsed),
            elapsed.as_secs_f64()
        );
    }
    drop(logs);

    // 3. Backfill with the real binary, one process per backend, peak RSS read from /proc.
    let mut backfills = vec![("SQLite", sqlite_url(dir.path(), "backfill"))];
    if let Some(admin) = postgres
        && let Ok((url, name)) = create_pg_database(admin, "backfill").await
    {
        pg_databases.push(name);
        backfills.push(("Postgres", url));
    }
    let mut results = Vec::new();
    for (name, url) in &backfills {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, bench_config(url, &anvil, &chain, &abi_path))?;
        let cpu_before = [cpu_seconds("anvil"), cpu_seconds("postgres"), children_cpu_seconds()];
        let (elapsed, peak_rss_kb) = backfill_process(&config).await?;
        let cpu = [cpu_seconds("anvil"), cpu_seconds("postgres"), children_cpu_seconds()];
        let [anvil_cpu, server_cpu, gemgate_cpu] = [0, 1, 2].map(|i| cpu[i] - cpu_before[i]);
        let events = count_events(url).await?;
        anyhow::ensure!(events == chain.logs, "{name}: indexed {events} events, expected {}", chain.logs);
        let events_rate = rate(events, elapsed);
        results.push((*name, events_rate));
        println!(
            "  backfill {name:<8}        {events_rate:>10.0} events/s ({:.2} s for {events} events, peak RSS {:.0} MB)",
            elapsed.as_secs_f64(),
            peak_rss_kb as f64 / 1024.0
        );
        let server = if *name == "Postgres" { format!(", postgres {server_cpu:.1}") } else { String::new() };
        println!("      CPU seconds: gemgate {gemgate_cpu:.1}, anvil {anvil_cpu:.1}{server}");
    }
    let slower_ceiling = ceilings.iter().map(|(_, (e, t))| rate(*e, *t)).fold(rpc_rate, f64::min);
    for (name, events_rate) in &results {
        println!(
            "    {name}: {:.0}% of the slower ceiling ({slower_ceiling:.0}/s)",
            100.0 * events_rate / slower_ceiling
        );
    }

    // 4. Live latency: an indexer on SQLite built by `gemgate run`'s wiring; block mined (the send returns
    // under automine) to the event's row committed. Once woken by websocket heads (polling every 30 s as the
    // fallback), once polling every 100 ms.
    for (name, heads) in [("websocket heads", HeadSource::Websocket), ("polling 100 ms", HeadSource::Polling)]
    {
        let latencies =
            live_latency(&anvil, &chain, &abi_path, dir.path(), args.latency_blocks, heads).await?;
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "  live latency, {name:<16} p50 {:.1} ms, p95 {:.1} ms over {} blocks (block mined to row committed)",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.95).as_secs_f64() * 1e3,
            latencies.len()
        );
    }
    if let Some(admin) = postgres {
        for name in pg_databases {
            drop_pg_database(admin, &name).await;
        }
    }
    Ok(())
}

fn decoder(anvil: &Anvil, chain: &SyntheticChain, abi_path: &std::path::Path) -> anyhow::Result<Decoder> {
    let abi =
        gemgate_config::parse_abi(&std::fs::read_to_string(abi_path)?).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Decoder::new(vec![ContractAbi::new("spammer", anvil.chain_id(), chain.address, &[abi])]))
}

fn sqlite_url(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(format!("{name}.db")).display())
}

async fn fetch_all(source: &EvmChain, chain: &SyntheticChain, span: u64) -> anyhow::Result<Vec<RawLog>> {
    let ranges: Vec<(u64, u64)> = (chain.start_block..=chain.end_block)
        .step_by(span as usize)
        .map(|from| (from, (from + span - 1).min(chain.end_block)))
        .collect();
    let mut out = Vec::new();
    let mut stream = futures::stream::iter(ranges)
        .map(|(from, to)| async move {
            source.logs(&LogQuery::Range { from, to, addresses: vec![chain.address] }).await
        })
        .buffered(4);
    while let Some(logs) = stream.next().await {
        out.extend(logs?);
    }
    Ok(out)
}

/// Decodes and commits the already-fetched logs in batches of about 10,000 events, as backfill would.
async fn bulk_load(
    url: &str,
    decoder: &Decoder,
    logs: &[RawLog],
    chain: &SyntheticChain,
) -> anyhow::Result<(u64, Duration)> {
    let store = SqlStore::connect(url, 4, ProjectionSet::gemforce_for(Vec::new())).await?;
    store.migrate().await?;
    let decoded: Vec<Vec<_>> = logs
        .chunks(10_000)
        .map(|chunk| chunk.iter().map(|log| decoder.decode(31337, log)).collect())
        .collect();
    let started = Instant::now();
    let mut previous: Option<BlockRef> = None;
    for (i, (chunk, events)) in logs.chunks(10_000).zip(decoded).enumerate() {
        let last = chunk.last().map_or(chain.end_block, |l| l.block_number);
        let cursor = BlockRef {
            number: last,
            hash: chunk.last().map_or_else(Default::default, |l| l.block_hash),
            parent_hash: alloy_primitives::B256::with_last_byte(i as u8),
        };
        let batch = Batch {
            chain_id: 31337,
            blocks: vec![cursor],
            events,
            outbox: Vec::new(),
            previous,
            cursor,
            finalized: last,
            fence: None,
        };
        store.commit_batch(&batch).await?;
        previous = Some(cursor);
    }
    let elapsed = started.elapsed();
    store.close().await;
    Ok((logs.len() as u64, elapsed))
}

async fn create_pg_database(admin: &str, purpose: &str) -> anyhow::Result<(String, String)> {
    let name = format!("gemgate_bench_{purpose}_{}", std::process::id());
    let store =
        SqlStore::connect(admin, 1, ProjectionSet::default()).await.context("connecting to Postgres")?;
    store.execute_admin(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    store.execute_admin(&format!("CREATE DATABASE {name}")).await?;
    store.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_pg_database(admin: &str, name: &str) {
    if let Ok(store) = SqlStore::connect(admin, 1, ProjectionSet::default()).await {
        let _ = store.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        store.close().await;
    }
}

async fn count_events(url: &str) -> anyhow::Result<u64> {
    let store = SqlStore::connect(url, 1, ProjectionSet::default()).await?;
    let status = store.chain_status().await?;
    store.close().await;
    Ok(status.first().map_or(0, |s| s.events))
}

fn bench_config(url: &str, anvil: &Anvil, chain: &SyntheticChain, abi: &std::path::Path) -> String {
    format!(
        "[database]\nurl = \"{url}\"\n[[chains]]\nid = {id}\nrpc = [\"{rpc}\"]\n\
         [[contracts]]\nname = \"spammer\"\nchain = {id}\naddress = \"{address}\"\nabi = [\"{abi}\"]\nstart_block = {start}\n",
        id = anvil.chain_id(),
        rpc = anvil.endpoint(),
        address = chain.address,
        abi = abi.display(),
        start = chain.start_block
    )
}

/// CPU time (user + system, seconds) of every process whose command name is `comm`, from /proc.
fn cpu_seconds(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| {
            // "pid (comm) state ..." where comm may hold spaces: split at the last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1;
            // Own and reaped children's time: Postgres backends are children of the postmaster.
            (name == comm).then(|| (11..=14).map(|i| ticks(rest, i)).sum::<f64>())
        })
        .sum()
}

/// CPU time (user + system, seconds) of process `pid` (`None`: this process).
fn pid_cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |pid| format!("/proc/{pid}/stat"));
    std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| ticks(rest, 11) + ticks(rest, 12)))
        .unwrap_or(0.0)
}

/// CPU time of this process' reaped children (the `gemgate index` runs).
fn children_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| ticks(rest, 13) + ticks(rest, 14)))
        .unwrap_or(0.0)
}

/// Field `index` (0-based, counted after the command name) of a /proc stat line, as seconds of 100 Hz ticks.
fn ticks(rest: &str, index: usize) -> f64 {
    rest.split_whitespace().nth(index).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0
}

/// Runs `gemgate index --once` and returns its wall time and peak resident memory (VmHWM, kB).
async fn backfill_process(config: &std::path::Path) -> anyhow::Result<(Duration, u64)> {
    gemgate_process(&["index", "--once"], config).await
}

/// Runs this binary's `gemgate ARGS --config CONFIG` to its end: the time it took and its peak RSS (kB).
async fn gemgate_process(args: &[&str], config: &std::path::Path) -> anyhow::Result<(Duration, u64)> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["--log-filter", &std::env::var("GEMGATE_BENCH_LOG").unwrap_or_else(|_| "warn".into())])
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(hwm) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(hwm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    if std::env::var_os("GEMGATE_BENCH_LOG").is_some() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        eprintln!("{stderr}");
    }
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        anyhow::bail!("gemgate {} failed: {stderr}", args.join(" "));
    }
    Ok((elapsed, peak))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadSource {
    Websocket,
    Polling,
}

async fn live_latency(
    anvil: &Anvil,
    chain: &SyntheticChain,
    abi_path: &std::path::Path,
    dir: &std::path::Path,
    blocks: u32,
    heads: HeadSource,
) -> anyhow::Result<Vec<Duration>> {
    // The indexer is built from a configuration file by the wiring `gemgate run` uses: with `ws`, it
    // subscribes to heads exactly as `run` does, and polls only every 30 s as the fallback.
    let name = format!("live-{heads:?}");
    let url = sqlite_url(dir, &name);
    let head = anvil.block_number().await?;
    let live_chain = SyntheticChain { start_block: head + 1, ..chain.clone() };
    let mut config = bench_config(&url, anvil, &live_chain, abi_path);
    let (ws, poll) = match heads {
        HeadSource::Websocket => (format!("ws = [\"{}\"]\n", anvil.ws_endpoint()), "30s"),
        HeadSource::Polling => (String::new(), "100ms"),
    };
    config = config.replacen("[[contracts]]", &format!("{ws}poll_interval = \"{poll}\"\n[[contracts]]"), 1);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let settings = gemgate_config::load(Some(&path)).context("loading the latency configuration")?;
    let store = gemgate_wiring::open_store(&settings).await?;
    let mut indexers =
        gemgate_wiring::indexers(&settings, &store, &gemgate_telemetry::Metrics::new()).await?;
    let indexer = indexers.pop().context("the latency configuration has a chain with a contract")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(indexer.run(async {
        let _ = stop_rx.await;
    }));
    let spammer = gemgate_testkit::bindings::LogSpammer::new(chain.address, anvil.provider());
    let owner = anvil.accounts()[0];
    let mut latencies = Vec::new();
    for i in 0..blocks {
        let pending = spammer
            .spam(alloy_primitives::U256::from(1), alloy_primitives::U256::from(1_000_000 + i))
            .from(owner)
            .send()
            .await?;
        let receipt = gemgate_testkit::confirm(&anvil.provider(), pending, "latency probe").await?;
        // The receipt exists once the block is mined: latency runs from here to the row being committed.
        let mined = Instant::now();
        let block = receipt.block_number.unwrap_or_default();
        let query =
            EventQuery { from_block: Some(block), to_block: Some(block), limit: 10, ..EventQuery::default() };
        loop {
            if !store.events(&query).await?.events.is_empty() {
                break;
            }
            anyhow::ensure!(
                mined.elapsed() < Duration::from_secs(10),
                "block {block} not indexed within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        latencies.push(mined.elapsed());
    }
    let _ = stop_tx.send(());
    let _ = task.await;
    latencies.sort();
    Ok(latencies)
}
