//! `gemgate chaos`: tools for operators who want to test their own setup the way gemgate's suite tests
//! itself. `gemgate chaos rpc-proxy` puts the test kit's fault-injecting JSON-RPC proxy in front of a node:
//! point a `[[chains]] rpc` at it and watch the indexer converge anyway. `gemgate chaos soak` runs the whole
//! service under every kind of fault for a bounded time on this machine and reports what survived.

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
    /// A bounded soak on this machine: three `gemgate run` processes on Postgres and RabbitMQ, a local
    /// anvil with logs, transactions and reorgs of 1-20 blocks, RPC faults through the proxy, SIGKILLs and
    /// SIGSTOPs of the processes and broker cuts for N minutes; then it checks the events against
    /// eth_getLogs, every delivery, the retractions and the nonces, and writes a report. Loopback only.
    Soak(SoakArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long to inject faults (the run then waits for the fleet to settle and checks).
    #[arg(long)]
    minutes: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// An admin URL of a local Postgres (the soak creates and drops its own database).
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
    /// A local RabbitMQ (the soak declares and deletes its own exchange and queue).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// The report as JSON.
    #[arg(long, default_value = "gemgate-soak-report.json")]
    report: std::path::PathBuf,
    /// Also print the report as one JSON line at the end.
    #[arg(long)]
    json: bool,
    /// The `gemgate` binary the fleet runs (default: this one).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
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
        ChaosWhat::Soak(args) => soak(args).await,
    }
}

async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    for (flag, url) in [("--postgres", &args.postgres), ("--amqp", &args.amqp)] {
        anyhow::ensure!(
            is_loopback(url),
            "{flag}: the soak runs against services on this machine only (loopback)"
        );
    }
    crate::chaos::run(crate::chaos::ChaosBench::soak(
        args.minutes,
        args.seed,
        args.postgres,
        args.amqp,
        args.binary,
        Some(args.report),
        args.json,
    ))
    .await
}

/// Whether a service URL names this machine (127.0.0.0/8, ::1 or localhost). The password is not looked at.
fn is_loopback(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else { return false };
    match url.host() {
        // Non-special schemes (postgres://, amqp://) keep the host as text.
        Some(url::Host::Domain(name)) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
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

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_machine_is_loopback() {
        for url in [
            "postgres://root@127.0.0.1:5432/postgres",
            "amqp://guest:guest@localhost:5672/%2f",
            "postgres://[::1]/x",
        ] {
            assert!(super::is_loopback(url), "{url}");
        }
        for url in
            ["postgres://db.example.com/x", "amqp://10.0.0.5:5672", "not a url", "postgres://128.0.0.1/x"]
        {
            assert!(!super::is_loopback(url), "{url}");
        }
    }
}
