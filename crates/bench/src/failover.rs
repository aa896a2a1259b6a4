//! `gemgate bench failover`: two `gemgate index` processes on one Postgres database follow a chain that
//! emits logs every block; the leader is failed again and again, alternately killed (SIGKILL, then a new
//! standby is started) and paused (SIGSTOP, resumed with SIGCONT once a standby took over, when it must
//! step down without writing). Measured: the time from each failure to the first commit by the new
//! leader (median and max). Checked at the end: the events table equals `eth_getLogs` of the chain.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::Context;
use gemgate_domain::cluster::LeaseRole;
use gemgate_domain::ports::Store;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::bindings::LogSpammer;
use gemgate_testkit::{Anvil, AnvilOptions, SplitMix64, build_log_chain, find_anvil};

use crate::fleet::{Fleet, TempDatabase, holder};

#[derive(Debug, Clone, clap::Args)]
pub struct FailoverBench {
    /// Leader failures to inject (alternately SIGKILL and SIGSTOP).
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// `cluster.lease_ttl` of the processes.
    #[arg(long, default_value = "3s")]
    lease_ttl: String,
    /// Postgres server (a database is created and dropped).
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The `gemgate` binary to run (default: this one).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Print the summary as one JSON line at the end.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: FailoverBench) -> anyhow::Result<()> {
    let ttl = humantime::parse_duration(&args.lease_ttl).context("--lease-ttl")?;
    println!(
        "gemgate bench failover: {} leader failures, 2 `gemgate index` processes on Postgres, lease_ttl {}; {}",
        args.kills,
        args.lease_ttl,
        crate::machine()
    );
    let anvil_binary = find_anvil().await?;
    let options =
        AnvilOptions { accounts: 2, block_time: Some(Duration::from_millis(250)), ..AnvilOptions::default() };
    let anvil = Anvil::start_binary(&anvil_binary, &options, 0).await?;
    let chain = build_log_chain(&anvil, 1, 100).await.context("deploying the log contract")?;
    let spam = Spam::start(&anvil, chain.address);

    let db = TempDatabase::create(&args.postgres, "gemgate_failover").await?;
    let dir = tempfile::tempdir()?;
    let abi = dir.path().join("LogSpammer.json");
    std::fs::write(&abi, Artifact::named("LogSpammer")?.json)?;
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\nmax_connections = 4\n[cluster]\nlease_ttl = \"{ttl}\"\n\
             [[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"100ms\"\n\
             [[contracts]]\nname = \"spammer\"\nchain = 31337\naddress = \"{address}\"\nabi = [\"{abi}\"]\nstart_block = {start}\n",
            url = db.url,
            ttl = args.lease_ttl,
            rpc = anvil.endpoint(),
            address = chain.address,
            abi = abi.display(),
            start = chain.start_block,
        ),
    )?;
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?,
    };
    // Each process's log goes to the run's folder (warnings by default; GEMGATE_BENCH_LOG sets the filter
    // and keeps the folder): a process that exits by itself is reported with the end of its log.
    let logs = std::env::var_os("GEMGATE_BENCH_LOG").map(|_| dir.path().to_path_buf());
    let mut fleet = Fleet::new(&binary, &config, &["index"], Some(dir.path()));
    let outcome = measure(&args, ttl, &anvil, &chain, &db, &mut fleet, &spam).await;
    spam.stop().await;
    fleet.stop_all().await;
    db.drop_now().await;
    if logs.is_some() {
        println!("  process logs kept in {}", dir.keep().display());
    }
    let summary = outcome?;
    println!(
        "  failover (failure to first commit by the new leader) over {} failures: median {:.2} s, max {:.2} s \
         (SIGKILL max {:.2} s, SIGSTOP max {:.2} s); lease_ttl {}",
        summary.times.len(),
        summary.median().as_secs_f64(),
        summary.max().as_secs_f64(),
        summary.max_of(false).as_secs_f64(),
        summary.max_of(true).as_secs_f64(),
        args.lease_ttl,
    );
    println!(
        "  converged: {} events in the database, {} logs from eth_getLogs, identical: {}",
        summary.stored, summary.chain, summary.identical
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "failures": summary.times.len(),
                "median_ms": summary.median().as_millis() as u64,
                "max_ms": summary.max().as_millis() as u64,
                "times_ms": summary.times.iter().map(|(_, t)| t.as_millis() as u64).collect::<Vec<_>>(),
                "stored_events": summary.stored,
                "chain_logs": summary.chain,
                "identical": summary.identical,
            })
        );
    }
    anyhow::ensure!(summary.identical, "the events table differs from the chain's logs");
    Ok(())
}

/// What the run measured.
#[derive(Debug)]
struct Summary {
    /// Per failure: paused (SIGSTOP) or killed, and the time to the new leader's first commit.
    times: Vec<(bool, Duration)>,
    stored: usize,
    chain: usize,
    identical: bool,
}

impl Summary {
    fn sorted(&self) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.times.iter().map(|(_, t)| *t).collect();
        times.sort();
        times
    }

    fn median(&self) -> Duration {
        let sorted = self.sorted();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }

    fn max_of(&self, paused: bool) -> Duration {
        self.times.iter().filter(|(p, _)| *p == paused).map(|(_, t)| *t).max().unwrap_or_default()
    }
}

async fn cursor(store: &SqlStore) -> anyhow::Result<u64> {
    Ok(store.cursor(31337).await?.map_or(0, |c| c.number))
}

async fn measure(
    args: &FailoverBench,
    ttl: Duration,
    anvil: &Anvil,
    chain: &gemgate_testkit::SyntheticChain,
    db: &TempDatabase,
    fleet: &mut Fleet,
    spam: &Spam,
) -> anyhow::Result<Summary> {
    fleet.start(&[])?;
    fleet.start(&[])?;
    let store = SqlStore::connect(&db.url, 2, ProjectionSet::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while holder(&store, LeaseRole::Indexer, "31337").await.ok().flatten().is_none()
        || cursor(&store).await.unwrap_or(0) == 0
    {
        anyhow::ensure!(Instant::now() < deadline, "no process started indexing within 90 s");
        anyhow::ensure!(fleet.exited().is_empty(), "a process exited: {:?}", fleet.exited());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rng = SplitMix64::new(41);
    let mut times = Vec::new();
    for i in 0..args.kills {
        tokio::time::sleep(Duration::from_millis(rng.range(1_000, 2_500))).await;
        let leader = holder(&store, LeaseRole::Indexer, "31337").await?.context("no live indexer lease")?;
        let pause = i % 2 == 1;
        let before = cursor(&store).await?;
        let failed = Instant::now();
        if pause {
            fleet.pause(&leader.holder).await?;
        } else {
            fleet.kill(&leader.holder).await?;
        }
        // Whatever commits after this point is the new leader's: the old one is dead or frozen.
        let took = loop {
            if cursor(&store).await? > before {
                break failed.elapsed();
            }
            anyhow::ensure!(
                failed.elapsed() < ttl * 10,
                "failure {}: no standby committed within {:?} of the leader's failure",
                i + 1,
                ttl * 10
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let new = holder(&store, LeaseRole::Indexer, "31337").await?.map(|l| l.holder).unwrap_or_default();
        anyhow::ensure!(new != leader.holder, "failure {}: the failed leader still holds the lease", i + 1);
        println!(
            "  failure {:>2}: {} {} -> new leader {new} committed after {:.2} s",
            i + 1,
            if pause { "SIGSTOP" } else { "SIGKILL" },
            leader.holder,
            took.as_secs_f64()
        );
        times.push((pause, took));
        if pause {
            // It wakes up believing it leads; its next write meets a newer token and it stands by.
            fleet.resume(&leader.holder).await?;
        } else {
            fleet.start(&[])?;
        }
        let exited = fleet.exited();
        anyhow::ensure!(exited.is_empty(), "a process exited by itself: {exited:?}");
    }
    spam.pause().await;
    // Let the leader reach the head the chain has now (blocks keep coming, without logs).
    let head = anvil.block_number().await? + 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cursor(&store).await? < head {
        anyhow::ensure!(Instant::now() < deadline, "the leader did not reach block {head}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to = cursor(&store).await?;
    let stored = crate::fleet::stored_logs(&store).await?;
    let on_chain = crate::fleet::chain_logs(anvil, chain.address, chain.start_block, to).await?;
    store.close().await;
    Ok(Summary { stored: stored.len(), chain: on_chain.len(), identical: stored == on_chain, times })
}

/// A transaction emitting logs every 100 ms, from a task, until paused.
#[derive(Debug)]
pub struct Spam {
    pause: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Spam {
    pub fn start(anvil: &Anvil, address: alloy::primitives::Address) -> Self {
        let (pause, mut paused) = tokio::sync::watch::channel(false);
        let (provider, from) = (anvil.provider(), anvil.accounts()[0]);
        let task = tokio::spawn(async move {
            let spammer = LogSpammer::new(address, provider);
            for i in 0u64.. {
                if *paused.borrow() {
                    return;
                }
                if let Err(error) = spammer.spam(U256::from(5), U256::from(i)).from(from).send().await {
                    tracing::debug!(%error, "spam transaction not sent");
                }
                tokio::select! {
                    _ = paused.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        Self { pause, task }
    }

    /// Stops sending (blocks keep coming on the block timer).
    pub async fn pause(&self) {
        let _ = self.pause.send(true);
        // What was sent last is mined within a block.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    pub async fn stop(self) {
        let _ = self.pause.send(true);
        let _ = self.task.await;
    }
}
