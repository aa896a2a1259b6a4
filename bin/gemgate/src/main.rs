//! The `gemgate` binary: command-line parsing and wiring only. Each subcommand loads the configuration,
//! installs telemetry and hands typed settings to the component crates.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gemgate_config::{LogFormat, Settings};
use gemgate_telemetry::LogStyle;

/// Exit code of a subcommand that exists in the interface but is not built yet (EX_UNAVAILABLE).
const EXIT_NOT_BUILT: u8 = 69;
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
    /// Serve the HTTP API.
    Serve,
    /// Run the transaction workers.
    Txm,
    /// Apply database migrations and exit.
    Migrate,
    /// Rebuild projections from stored events, or re-deliver to a sink from a block.
    Replay,
    /// Start a local chain with the sample Gemforce contracts and drive realistic traffic through them.
    Demo(demo::DemoArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
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
        Command::Demo(ref args) => {
            if let Err(code) = init_telemetry(&cli, None) {
                return code;
            }
            run_async(demo::run(args.clone()))
        }
        Command::Run => not_built("run", "the indexer and API issues (roadmap 2 and 5)"),
        Command::Index { .. } => not_built("index", "the indexer issue (roadmap 2)"),
        Command::Dispatch => not_built("dispatch", "the delivery issue (roadmap 3)"),
        Command::Serve => not_built("serve", "the API issue (roadmap 5)"),
        Command::Txm => not_built("txm", "the transaction manager issue (roadmap 4)"),
        Command::Migrate => not_built("migrate", "the indexer issue (roadmap 2)"),
        Command::Replay => not_built("replay", "the delivery and snapshot issues (roadmap 3 and 7)"),
    }
}

fn not_built(command: &str, arrives_with: &str) -> ExitCode {
    eprintln!(
        "gemgate {command}: not built yet; it arrives with {arrives_with}. See README.md for what works today."
    );
    ExitCode::from(EXIT_NOT_BUILT)
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
        .unwrap_or_else(|| "info".to_string());
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
