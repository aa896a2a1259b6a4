//! The `gemgate` binary: command-line parsing and wiring only. Each subcommand loads the configuration,
//! installs telemetry and hands typed settings to the component crates.

mod index;
mod keys;
mod replay;
mod snapshot;

// The operator's tools beside the service, each behind a default feature: a production build
// (`--no-default-features`) carries only what `run` and its parts need.
#[cfg(feature = "bench")]
use gemgate_bench as bench;
#[cfg(feature = "consume")]
use gemgate_consumer::reference as consume;
#[cfg(feature = "demo")]
use gemgate_demo as demo;
use gemgate_wiring as wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gemgate_config::{LogFormat, Settings};
use gemgate_store::delivery::ReplayFrom;
use gemgate_telemetry::LogStyle;

/// mimalloc: the event and message paths allocate many small JSON values on several threads, where glibc's
/// allocator spent a quarter of the dispatcher's CPU (measured with `perf` in `gemgate bench deliver`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid configuration (EX_CONFIG).
const EXIT_BAD_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(name = "gemgate", version, about = "The off-chain integration backend for Gemforce and any EVM chain", long_about = None)]
struct Cli {
    /// Configuration file (TOML). Every key can be overridden with GEMGATE__SECTION__KEY.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format; overrides telemetry.log_format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter such as "info,gemgate_indexer=debug"; overrides telemetry.log_filter.
    #[arg(long, global = true, value_name = "FILTER")]
    log_filter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: indexer, dispatchers, transaction workers and the API.
    Run,
    /// Index the configured contracts into the database.
    Index {
        /// Backfill to the current head and exit (batch mode) instead of following the chain.
        #[arg(long)]
        once: bool,
    },
    /// Deliver outbox messages to the configured sinks.
    Dispatch,
    /// The reference consumer: what a sink delivers (RabbitMQ, Kafka, NATS, Redis or signed webhooks) into a
    /// trade-deal projection in its own database, exactly once.
    #[cfg(feature = "consume")]
    Consume(consume::ConsumeArgs),
    /// Show the sinks' delivery state; pause or resume one.
    #[command(subcommand)]
    Sinks(SinksCommand),
    /// Show the processes on this database and which one holds which lease (each chain's indexer, each
    /// sink's dispatcher, each signer), since when and when last renewed: what GET /v1/cluster answers.
    Status {
        /// Print the GET /v1/cluster JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Manage local keystores (Ethereum JSON keystore v3) for keystore signers.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve the HTTP API.
    Serve,
    /// Make a view call the way POST /v1/call does and print its answer as JSON: the result decoded by
    /// the contract's ABI, or why it reverted (then the exit status is 1).
    Call(CallArgs),
    /// Run the transaction workers.
    Txm,
    /// Apply database migrations and exit.
    Migrate,
    /// Rebuild the projection tables from the stored events beside the live ones, then swap them in
    /// atomically (the API keeps serving the old tables until then). Resumes an interrupted replay.
    /// To deliver to a sink again from a block, see `gemgate sinks replay`.
    Replay(replay::ReplayArgs),
    /// One round of hybrid reconciliation now: projection values compared with the contracts' own views at
    /// the finalized block; drift is recorded (healed with `[reconcile] heal = true`) and printed as JSON.
    Reconcile,
    /// Export the projections with their cursor as a verifiable file, or start an empty database from one.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Start a local chain with the sample Gemforce contracts and drive realistic traffic through them.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure throughput, memory and latency on a synthetic chain (use a release build).
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Fault injection for testing a setup: `gemgate chaos rpc-proxy` puts a JSON-RPC proxy with seeded
    /// faults (latency, 429, 5xx, resets, bad JSON, a lagging node, stale or foreign logs, finality going
    /// backwards) in front of a node.
    #[cfg(feature = "bench")]
    Chaos(bench::tools::ChaosArgs),
}

#[derive(Debug, Subcommand)]
enum SinksCommand {
    /// Each configured sink: kind, finality, position in the outbox, backlog, dead letters, paused.
    List,
    /// Stop delivering to a sink (running dispatchers notice within a round); the backlog waits.
    Pause { name: String },
    /// Deliver to a paused sink again, from where it stopped.
    Resume { name: String },
    /// Deliver again from a block (of every chain, or of --chain) or from a time (RFC 3339).
    Replay {
        name: String,
        #[arg(long, conflicts_with = "from_time", required_unless_present = "from_time")]
        from_block: Option<u64>,
        /// With --from-block: only this chain's blocks decide where the replay starts.
        #[arg(long, requires = "from_block")]
        chain: Option<u64>,
        /// e.g. 2026-11-26T14:00:00Z
        #[arg(long)]
        from_time: Option<String>,
    },
    /// Send a sink's dead letters again (from the oldest of them on).
    Requeue { name: String },
}

#[derive(Debug, Clone, clap::Args)]
struct CallArgs {
    /// A configured contract's name, or a 0x address.
    contract: String,
    /// A function name from the contract's ABI (`carbonCreditBalance`), or a signature such as
    /// "balanceOf(address)" (add "returns (uint256)" to decode the result of an unconfigured contract).
    function: String,
    /// The function's arguments: numbers, addresses, strings, `true`/`false`; arrays and tuples as JSON.
    args: Vec<String>,
    /// latest, safe, finalized, a block number or a block hash.
    #[arg(long, default_value = "latest")]
    block: String,
    /// msg.sender of the call.
    #[arg(long)]
    from: Option<String>,
    /// The chain, when CONTRACT is an address and several chains are configured.
    #[arg(long)]
    chain: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted, or list every problem.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Check) => config_check(&cli),
        #[cfg(feature = "bench")]
        Command::Bench(ref args) => {
            if let Err(code) = init_telemetry(&cli, None) {
                return code;
            }
            run_async(bench::run(args.clone()))
        }
        #[cfg(feature = "bench")]
        Command::Chaos(ref args) => {
            if let Err(code) = init_telemetry(&cli, None) {
                return code;
            }
            run_async(bench::tools::run(args.clone()))
        }
        Command::Keys(ref command) => match keys::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("gemgate keys: {error:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "consume")]
        Command::Consume(ref args) => {
            if let Err(code) = init_telemetry(&cli, None) {
                return code;
            }
            run_async(consume::run(args.clone()))
        }
        #[cfg(feature = "demo")]
        Command::Demo(ref args) => {
            if let Err(code) = init_telemetry(&cli, None) {
                return code;
            }
            run_async(demo::run(args.clone()))
        }
        Command::Run => with_settings(&cli, |settings| async move {
            let store = wiring::open_store(&settings).await?;
            wiring::run_service(&settings, store, gemgate_telemetry::Metrics::new(), wiring::Parts::ALL).await
        }),
        Command::Index { once } => {
            with_settings(&cli, move |settings| async move { index::run(&settings, once).await })
        }
        Command::Serve => with_settings(&cli, |settings| async move { serve(&settings).await }),
        Command::Call(ref args) => {
            with_settings(&cli, move |settings| async move { call(&settings, args).await })
        }
        Command::Migrate => with_settings(&cli, |settings| async move {
            wiring::open_store(&settings).await?;
            println!("migrations applied to {}", settings.database.url);
            Ok(())
        }),
        Command::Dispatch => with_settings(&cli, |settings| async move {
            let store = wiring::open_store(&settings).await?;
            let parts = wiring::Parts { dispatch: true, ..wiring::Parts::NONE };
            wiring::run_service(&settings, store, gemgate_telemetry::Metrics::new(), parts).await
        }),
        Command::Sinks(ref command) => {
            with_settings(&cli, move |settings| async move { sinks(&settings, command).await })
        }
        Command::Status { json } => {
            with_settings(&cli, move |settings| async move { status(&settings, json).await })
        }
        Command::Txm => with_settings(&cli, |settings| async move {
            let store = wiring::open_store(&settings).await?;
            let parts = wiring::Parts { txm: true, ..wiring::Parts::NONE };
            wiring::run_service(&settings, store, gemgate_telemetry::Metrics::new(), parts).await
        }),
        Command::Reconcile => with_settings(&cli, |settings| async move { reconcile(&settings).await }),
        Command::Snapshot(ref command) => {
            with_settings(&cli, move |settings| async move { snapshot::run(&settings, command).await })
        }
        Command::Replay(ref args) => {
            with_settings(&cli, move |settings| async move { replay::run(&settings, args).await })
        }
    }
}

/// Loads and validates the configuration, installs telemetry, then runs `f` on the async runtime.
fn with_settings<F, Fut>(cli: &Cli, f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match gemgate_config::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("gemgate: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Err(code) = init_telemetry(cli, Some(&settings)) {
        return code;
    }
    run_async(f(settings))
}

/// `gemgate serve`: the API alone, reading what indexers elsewhere write.
async fn serve(settings: &Settings) -> anyhow::Result<()> {
    // As a part of the cluster: the replica is listed in GET /v1/cluster and its /ready names it.
    let store = wiring::open_store(settings).await?;
    let parts = wiring::Parts { api: true, ..wiring::Parts::NONE };
    wiring::run_service(settings, store, gemgate_telemetry::Metrics::new(), parts).await
}

/// `gemgate reconcile`: one round, its findings as JSON.
async fn reconcile(settings: &Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    let store = wiring::open_store(settings).await?;
    let reconciler = wiring::reconciler(settings, &store, &gemgate_telemetry::Metrics::new())?.context(
        "nothing to reconcile: configure a diamond = true contract, or [[snapshots]] with keys and compare",
    )?;
    let report = reconciler.run_once().await?;
    let blocks: Vec<_> = report
        .blocks
        .iter()
        .map(|(chain, b)| serde_json::json!({"chain_id": chain, "block_number": b.number, "block_hash": b.hash}))
        .collect();
    let answer = serde_json::json!({
        "blocks": blocks,
        "rows_checked": report.rows_checked,
        "rows_skipped": report.rows_skipped,
        "duration_ms": report.duration_ms,
        "drift": report.drift,
    });
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// `gemgate call`: one view call through the same proxy and ABIs as `POST /v1/call`.
async fn call(settings: &Settings, args: &CallArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let metrics = gemgate_telemetry::Metrics::new();
    let calls = wiring::view_calls(settings, &metrics)?
        .context("no chains are configured: add a [[chains]] entry to make calls")?;
    let chain_id = match (args.chain, calls.catalog.contract(&args.contract)) {
        (Some(chain), _) => chain,
        (None, Some((chain, _))) => chain,
        (None, None) => match settings.chains.as_slice() {
            [only] => only.id,
            _ => anyhow::bail!("{:?} is not a configured contract: give --chain", args.contract),
        },
    };
    let block = gemgate_domain::calls::BlockSelector::parse(&args.block).with_context(|| {
        format!("--block {:?} is not latest, safe, finalized, a block number or a block hash", args.block)
    })?;
    let from = args
        .from
        .as_deref()
        .map(|text| text.parse().map_err(|_| anyhow::anyhow!("--from {text:?} is not a 20-byte hex address")))
        .transpose()?;
    // Arrays and tuples are JSON; everything else is taken as written.
    let values: Vec<serde_json::Value> = args
        .args
        .iter()
        .map(|arg| match arg.starts_with('[') {
            true => serde_json::from_str(arg).unwrap_or_else(|_| serde_json::Value::String(arg.clone())),
            false => serde_json::Value::String(arg.clone()),
        })
        .collect();
    let input = gemgate_calls::CallInput {
        chain_id,
        to: &args.contract,
        from,
        data: None,
        function: Some(&args.function),
        args: &values,
        block: Some(block),
    };
    let prepared = calls.catalog.prepare(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = calls.proxy.call(&prepared.call).await?;
    let result = calls.catalog.explain(&prepared, &answer);
    println!("{}", serde_json::to_string_pretty(&result)?);
    match &result.revert {
        Some(revert) => anyhow::bail!("the call reverted: {}", revert.reason),
        None => Ok(()),
    }
}

/// `gemgate status`: the leases table, as `GET /v1/cluster` shows it.
async fn status(settings: &Settings, json: bool) -> anyhow::Result<()> {
    use gemgate_domain::ports::Leases;
    let store = wiring::open_store(settings).await?;
    let now = gemgate_cluster::unix_ms();
    let view = gemgate_api::cluster::cluster_view(&store.leases().await?, now);
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let ago = |ms: u64| {
        if ms == 0 { "-".to_string() } else { format!("{:.1}s ago", now.saturating_sub(ms) as f64 / 1e3) }
    };
    println!("{:<32} {:<24} {:<8} {:>12} {:>12}", "PROCESS", "PARTS", "STATE", "SINCE", "RENEWED");
    for p in &view.processes {
        let state = if p.live { "live" } else { "gone" };
        println!(
            "{:<32} {:<24} {:<8} {:>12} {:>12}",
            p.name,
            p.parts.join(","),
            state,
            ago(p.since_ms),
            ago(p.renewed_ms)
        );
    }
    println!();
    println!(
        "{:<8} {:<48} {:<32} {:>6} {:>12} {:>12} STATE",
        "ROLE", "NAME", "HOLDER", "TOKEN", "SINCE", "RENEWED"
    );
    for l in &view.leases {
        let state = if l.live { "held" } else { "free" };
        println!(
            "{:<8} {:<48} {:<32} {:>6} {:>12} {:>12} {state}",
            l.role,
            l.name,
            l.holder,
            l.token,
            ago(l.since_ms),
            ago(l.renewed_ms)
        );
    }
    if view.processes.is_empty() && view.leases.is_empty() {
        println!("(no process has run on this database yet)");
    }
    Ok(())
}

/// `gemgate sinks list|pause|resume`.
async fn sinks(settings: &Settings, command: &SinksCommand) -> anyhow::Result<()> {
    let store = wiring::open_store(settings).await?;
    let known = |name: &str| -> anyhow::Result<()> {
        if settings.sinks.iter().any(|s| s.name == name) {
            Ok(())
        } else {
            let names: Vec<&str> = settings.sinks.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!("no sink named {name:?} is configured (configured: {})", names.join(", "))
        }
    };
    match command {
        SinksCommand::List => {
            let names: Vec<String> = settings.sinks.iter().map(|s| s.name.clone()).collect();
            let backlogs = store.sink_backlogs(&names).await?;
            println!(
                "{:<20} {:<8} {:<16} {:>10} {:>10} {:>6} STATE",
                "NAME", "KIND", "FINALITY", "POSITION", "BACKLOG", "DEAD"
            );
            for (sink, backlog) in settings.sinks.iter().zip(backlogs) {
                println!(
                    "{:<20} {:<8} {:<16} {:>10} {:>10} {:>6} {}",
                    sink.name,
                    sink.kind.name(),
                    sink.finality.to_string(),
                    backlog.position,
                    backlog.backlog,
                    backlog.dead_letters,
                    if backlog.paused { "paused" } else { "active" }
                );
            }
        }
        SinksCommand::Pause { name } => {
            known(name)?;
            store.set_sink_paused(name, true).await?;
            println!("sink {name} paused");
        }
        SinksCommand::Resume { name } => {
            known(name)?;
            store.set_sink_paused(name, false).await?;
            println!("sink {name} resumed");
        }
        SinksCommand::Replay { name, from_block, chain, from_time } => {
            known(name)?;
            let from = match (from_block, from_time) {
                (Some(block), _) => ReplayFrom::Block { chain_id: *chain, block: *block },
                (None, Some(time)) => ReplayFrom::Time(replay_time(time)?),
                (None, None) => anyhow::bail!("give --from-block or --from-time"),
            };
            let position = store.position_before(from).await?;
            store.rewind_sink(name, position).await?;
            println!("sink {name} delivers again from outbox position {}", position + 1);
        }
        SinksCommand::Requeue { name } => {
            known(name)?;
            let count = store.requeue_dead_letters(name).await?;
            println!("sink {name}: {count} dead letter(s) requeued");
        }
    }
    Ok(())
}

/// An RFC 3339 time in the stored form (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC).
fn replay_time(text: &str) -> anyhow::Result<String> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|e| {
        anyhow::anyhow!("--from-time {text:?} is not an RFC 3339 time such as 2026-11-26T14:00:00Z: {e}")
    })?;
    Ok(humantime::format_rfc3339_millis(time).to_string())
}

fn config_check(cli: &Cli) -> ExitCode {
    match gemgate_config::load(cli.config.as_deref()) {
        Ok(settings) => {
            let origin = cli.config.as_ref().map_or("defaults".to_string(), |p| p.display().to_string());
            println!("# configuration OK ({origin}, with GEMGATE__ overrides applied; secrets redacted)");
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let problems = error.problems();
            eprintln!("configuration has {} problem(s):", problems.len());
            for problem in problems {
                eprintln!("  {problem}");
            }
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// Installs logging: command-line flags win over the configuration, which wins over defaults.
fn init_telemetry(cli: &Cli, settings: Option<&Settings>) -> Result<(), ExitCode> {
    let style = match (cli.log_format, settings.map(|s| s.telemetry.log_format)) {
        (Some(LogFormatArg::Json), _) | (None, Some(LogFormat::Json)) => LogStyle::Json,
        _ => LogStyle::Text,
    };
    let filter = cli
        .log_filter
        .clone()
        .or_else(|| settings.map(|s| s.telemetry.log_filter.clone()))
        .unwrap_or_else(|| gemgate_config::DEFAULT_LOG_FILTER.to_string());
    gemgate_telemetry::init(style, &filter).map_err(|e| {
        eprintln!("gemgate: {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn run_async(future: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gemgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "gemgate stopped");
            eprintln!("gemgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
