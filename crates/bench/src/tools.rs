//! `gemgate chaos`: tools for operators who want to test their own setup the way gemgate's suite tests
//! itself. `gemgate chaos rpc-proxy` puts the test kit's fault-injecting JSON-RPC proxy in front of a node:
//! point a `[[chains]] rpc` at it and watch the indexer converge anyway.

use std::time::Duration;

use anyhow::Context;
use gemgate_testkit::RpcProxy;
use gemgate_testkit::rpc_proxy::Rule;

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    what: ChaosWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum ChaosWhat {
    /// A JSON-RPC proxy in front of a node that injects seeded faults: latency, 429, 5xx, resets,
    /// truncated or invalid JSON, a lagging node, stale, foreign or empty eth_getLogs, finality going
    /// backwards. GET on the proxy answers the counts of requests and faults as JSON.
    RpcProxy(RpcProxyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RpcProxyArgs {
    /// The node to forward to (http://host:port).
    #[arg(long)]
    upstream: String,
    /// Where to listen (loopback by default; port 0 picks a free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8546")]
    listen: std::net::SocketAddr,
    /// A fault, repeatable: KIND[=ARG][@RATE]. Kinds: latency=MIN..MAX, 429[=RETRY_AFTER_S], 5xx, reset,
    /// truncate, invalid-json, lag=BLOCKS, stale-logs, uncle-logs, empty-logs, finality-backwards=BLOCKS.
    /// RATE is the share of requests hit (0-1; default 1 for latency, 0.2 otherwise).
    #[arg(long = "fault", value_name = "RULE")]
    faults: Vec<String>,
    /// Every fault at its default rate (besides those given with --fault).
    #[arg(long)]
    all: bool,
    /// Seed of the fault draws: the same seed and the same requests give the same faults.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print the counts this often (0: only at the end).
    #[arg(long, default_value = "10s")]
    report_every: String,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    match args.what {
        ChaosWhat::RpcProxy(args) => rpc_proxy(args).await,
    }
}

/// The rules of `--fault` and `--all`, refused with the rule named.
pub fn rules(faults: &[String], all: bool) -> anyhow::Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = faults
        .iter()
        .map(|f| f.parse::<Rule>().map_err(|e| anyhow::anyhow!("--fault {e}")))
        .collect::<Result<_, _>>()?;
    if all {
        for fault in gemgate_testkit::rpc_proxy::Fault::all() {
            let rate =
                if matches!(fault, gemgate_testkit::rpc_proxy::Fault::Latency { .. }) { 1.0 } else { 0.05 };
            rules.push(Rule { fault, rate });
        }
    }
    Ok(rules)
}

async fn rpc_proxy(args: RpcProxyArgs) -> anyhow::Result<()> {
    let rules = rules(&args.faults, args.all)?;
    let every = humantime::parse_duration(&args.report_every)
        .with_context(|| format!("--report-every: {:?} is not a duration", args.report_every))?;
    let proxy = RpcProxy::bind(args.listen, &args.upstream, rules.clone(), args.seed)
        .await
        .with_context(|| format!("starting the proxy on {} for {}", args.listen, args.upstream))?;
    let listed: Vec<String> = rules.iter().map(Rule::to_string).collect();
    say(&format!(
        "gemgate chaos rpc-proxy: {} -> {}; faults: {}; seed {}",
        proxy.url(),
        args.upstream,
        if listed.is_empty() { "none".to_string() } else { listed.join(" ") },
        args.seed
    ));
    say(&format!("  GET {} answers the counts; Ctrl-C stops", proxy.url()));
    let mut ticker = tokio::time::interval(if every.is_zero() { Duration::from_secs(3600) } else { every });
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated() => break,
            _ = ticker.tick(), if !every.is_zero() => say(&format!("  {}", summary(&proxy))),
        }
    }
    say(&format!("  stopped; {}", summary(&proxy)));
    Ok(())
}

/// A line on stdout; a closed stdout (a pipe nobody reads) does not stop the proxy.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn summary(proxy: &RpcProxy) -> String {
    let counts = proxy.counts();
    let requests = counts.get("requests").copied().unwrap_or(0);
    let faults: Vec<String> =
        counts.iter().filter(|(k, _)| *k != "requests").map(|(k, n)| format!("{k} {n}")).collect();
    format!("{requests} calls; faults: {}", if faults.is_empty() { "none".into() } else { faults.join(", ") })
}

#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}
