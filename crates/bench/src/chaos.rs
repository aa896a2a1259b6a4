//! `gemgate bench chaos`: three `gemgate run` processes on one Postgres database and one RabbitMQ queue,
//! while a contract emits logs every 200 ms on anvil, the chain reorgs (depth 1-10) every few seconds and
//! two signers' transactions keep arriving. Every 5-10 s a random process is SIGKILLed (and restarted) or
//! SIGSTOPped (and resumed a few seconds later). At the end, after the faults stop and everything settles:
//! the events table equals `eth_getLogs` of the canonical chain; every canonical event arrived at the
//! queue (duplicates counted), and a retraction arrived for every delivered event a reorg removed; each
//! signer's nonces are contiguous, each request on chain once; and the longest time from a fault of the
//! indexer's leader to the next commit is reported (it must stay under 5 s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use anyhow::Context;
use futures::StreamExt;
use gemgate_domain::TxState;
use gemgate_domain::cluster::LeaseRole;
use gemgate_domain::ports::{Broadcaster, Leases, Ledger, Store};
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::artifacts::Artifact;
use gemgate_testkit::{Anvil, AnvilOptions, SplitMix64, build_log_chain, find_anvil};
use gemgate_txm::signers::LocalSigner;
use gemgate_txm::{NamedSigner, Submit, TxManager, TxmOptions};
use lapin::options::{BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

use crate::failover::Spam;
use crate::fleet::{Fleet, TempDatabase, holder};

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosBench {
    /// Process faults to inject (SIGKILL and restart, or SIGSTOP and SIGCONT).
    #[arg(long, default_value_t = 30)]
    faults: u32,
    /// Shortest and longest wait between two faults.
    #[arg(long, default_value = "5s")]
    min_gap: String,
    #[arg(long, default_value = "10s")]
    max_gap: String,
    /// `gemgate run` processes.
    #[arg(long, default_value_t = 3)]
    processes: u32,
    /// `cluster.lease_ttl` and `txm.lease_ttl` of the processes.
    #[arg(long, default_value = "3s")]
    lease_ttl: String,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// The `gemgate` binary to run (default: this one).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Print the report as one JSON line at the end.
    #[arg(long)]
    json: bool,
    /// Keep injecting faults for this many minutes instead of stopping after `--faults`.
    #[arg(long)]
    minutes: Option<f64>,
    /// Put the fault-injecting JSON-RPC proxy between the processes and the node with this rule
    /// (repeatable; the rules of `gemgate chaos rpc-proxy --fault`).
    #[arg(long = "rpc-fault", value_name = "RULE")]
    rpc_faults: Vec<String>,
    /// Now and then cut the processes' broker connections (through a TCP proxy) for 1-5 s.
    #[arg(long)]
    broker_cuts: bool,
    /// The deepest reorg.
    #[arg(long, default_value_t = 10)]
    max_reorg: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

/// The RPC faults of a soak: every kind, at rates a bad provider day has.
const SOAK_RPC_FAULTS: &[&str] = &[
    "latency=1ms..40ms",
    "429=1@0.02",
    "429@0.02",
    "5xx@0.02",
    "reset@0.02",
    "truncate@0.01",
    "invalid-json@0.01",
    "lag=3@0.05",
    "stale-logs@0.05",
    "uncle-logs@0.05",
    "empty-logs@0.05",
    "finality-backwards=5@0.1",
];

impl ChaosBench {
    /// `gemgate chaos soak`: the chaos run bounded in time, with RPC faults, broker cuts and reorgs of 1-20
    /// blocks on top of the process faults.
    #[allow(clippy::too_many_arguments)]
    pub fn soak(
        minutes: f64,
        seed: u64,
        postgres: String,
        amqp: String,
        binary: Option<std::path::PathBuf>,
        report: Option<std::path::PathBuf>,
        json: bool,
    ) -> Self {
        Self {
            faults: u32::MAX,
            min_gap: "5s".into(),
            max_gap: "10s".into(),
            processes: 3,
            lease_ttl: "3s".into(),
            seed,
            postgres,
            amqp,
            binary,
            json,
            minutes: Some(minutes),
            rpc_faults: SOAK_RPC_FAULTS.iter().map(|r| r.to_string()).collect(),
            broker_cuts: true,
            max_reorg: 20,
            report,
        }
    }
}

const SIGNERS: usize = 2;

/// What the run did and found.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    faults: u32,
    kills: u32,
    pauses: u32,
    leader_faults: u32,
    reorgs: u32,
    /// Longest time from a fault of the indexer's leader to the next commit, milliseconds.
    max_leader_gap_ms: u64,
    events: usize,
    chain_logs: usize,
    events_identical: bool,
    messages: usize,
    duplicates: usize,
    canonical_missing: usize,
    retractions: usize,
    retractions_missing: usize,
    transactions: usize,
    nonce_problems: Vec<String>,
    /// Broker connections cut (`--broker-cuts`).
    broker_cuts: u32,
    /// RPC calls through the proxy and the faults it injected, by kind (`--rpc-fault`).
    rpc_faults: BTreeMap<String, u64>,
    /// The most blocks the committed cursor was behind the head, sampled every 500 ms.
    max_lag_blocks: u64,
    /// From the last fault to everything settled, seconds.
    recovered_secs: f64,
    seconds: f64,
}

impl Report {
    fn passed(&self) -> bool {
        self.events_identical
            && self.canonical_missing == 0
            && self.retractions_missing == 0
            && self.nonce_problems.is_empty()
            // Failover within 5 s is promised for a healthy node; behind the RPC fault proxy (429s with
            // Retry-After, a lagging node) a new leader's first commit may take longer, and is only reported.
            && (self.max_leader_gap_ms < 5_000 || !self.rpc_faults.is_empty())
    }
}

fn duration(text: &str, name: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text).with_context(|| format!("--{name}: {text:?} is not a duration"))
}

pub async fn run(args: ChaosBench) -> anyhow::Result<()> {
    let (min_gap, max_gap) = (duration(&args.min_gap, "min-gap")?, duration(&args.max_gap, "max-gap")?);
    anyhow::ensure!(min_gap <= max_gap, "--min-gap is above --max-gap");
    let rules = crate::tools::rules(&args.rpc_faults, false)?;
    anyhow::ensure!(args.max_reorg >= 1, "--max-reorg must be at least 1");
    if let Some(minutes) = args.minutes {
        anyhow::ensure!(
            minutes > 0.0 && minutes <= 24.0 * 60.0,
            "--minutes must be above 0 and at most 1440"
        );
    }
    let what = match args.minutes {
        Some(minutes) => format!("faults for {minutes} min"),
        None => format!("{} faults", args.faults),
    };
    let extra = format!(
        "{}{}",
        if rules.is_empty() { String::new() } else { format!(", {} RPC fault rules", rules.len()) },
        if args.broker_cuts { ", broker cuts" } else { "" }
    );
    println!(
        "gemgate bench chaos: {what} every {}-{} over {} `gemgate run` processes (Postgres, RabbitMQ), reorgs of 1-{} blocks{extra}, lease_ttl {}; {}",
        args.min_gap,
        args.max_gap,
        args.processes,
        args.max_reorg,
        args.lease_ttl,
        crate::machine()
    );
    let started = Instant::now();
    let anvil_binary = find_anvil().await?;
    let options =
        AnvilOptions { accounts: 2, block_time: Some(Duration::from_millis(500)), ..AnvilOptions::default() };
    let anvil = Anvil::start_binary(&anvil_binary, &options, 0).await?;
    let chain = build_log_chain(&anvil, 1, 100).await.context("deploying the log contract")?;
    let db = TempDatabase::create(&args.postgres, "gemgate_chaos").await?;
    // The processes reach the node through the fault proxy, and the broker through a proxy the run cuts;
    // the checks and the front door talk to both directly.
    let rpc_proxy = match rules.is_empty() {
        true => None,
        false => Some(gemgate_testkit::RpcProxy::start(&anvil.endpoint(), rules, args.seed).await?),
    };
    let rpc = rpc_proxy.as_ref().map_or_else(|| anvil.endpoint(), gemgate_testkit::RpcProxy::url);
    let broker_proxy = match args.broker_cuts {
        true => {
            let url = url::Url::parse(&args.amqp).context("--amqp is not a URL")?;
            let target = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5672));
            Some(gemgate_testkit::TcpProxy::start(&target).await?)
        }
        false => None,
    };
    let amqp = match &broker_proxy {
        Some(proxy) => {
            let mut url = url::Url::parse(&args.amqp)?;
            url.set_port(Some(proxy.port()))
                .map_err(|()| anyhow::anyhow!("--amqp has no port to replace"))?;
            url.to_string()
        }
        None => args.amqp.clone(),
    };

    let tag = std::process::id();
    let (exchange, queue) = (format!("gemgate-chaos-x-{tag}"), format!("gemgate-chaos-q-{tag}"));
    let connection = crate::deliver::connect(&args.amqp).await?;
    let channel = connection.create_channel().await?;
    crate::deliver::declare(&channel, &exchange, &queue).await?;
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut consumer = channel
        .basic_consume(
            &queue,
            "chaos",
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await?;
    let collecting = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
                let id = body["id"].as_str().unwrap_or_default().to_string();
                let status = body["status"].as_str().unwrap_or_default().to_string();
                received.lock().unwrap_or_else(|e| e.into_inner()).push((id, status));
            }
        })
    };

    let dir = tempfile::tempdir()?;
    let signers: Vec<(String, String, Address)> = (0..SIGNERS)
        .map(|i| {
            let key = format!("0x{}", hex::encode([0x51 + i as u8; 32]));
            let local = LocalSigner::from_hex("s", &key).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((format!("s{i}"), key, gemgate_domain::ports::Signer::address(&local)))
        })
        .collect::<anyhow::Result<_>>()?;
    for (_, _, address) in &signers {
        let _: serde_json::Value = anvil
            .provider()
            .raw_request("anvil_setBalance".into(), (address, U256::from(10u64).pow(U256::from(21u64))))
            .await?;
    }
    // Deeper than any reorg: the contract, its first logs and the balances stay on every branch.
    anvil.mine(args.max_reorg + 2).await?;
    let endpoints = (rpc.as_str(), amqp.as_str());
    let config = write_config(dir.path(), &args, endpoints, &chain, &db.url, &exchange, &queue, &signers)?;
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?,
    };
    // Each process's log goes to the run's folder (warnings by default; GEMGATE_BENCH_LOG sets the filter
    // and keeps the folder): a process that exits by itself is reported with the end of its log.
    let logs = std::env::var_os("GEMGATE_BENCH_LOG").map(|_| dir.path().to_path_buf());
    let mut fleet = Fleet::new(&binary, &config, &["run"], Some(dir.path()));
    let env = |signers: &[(String, String, Address)]| {
        let mut env: Vec<(String, String)> =
            signers.iter().map(|(n, k, _)| (format!("GEMGATE_CHAOS_KEY_{n}"), k.clone())).collect();
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        env.push(("GEMGATE__API__LISTEN".into(), format!("127.0.0.1:{}", port.unwrap_or(0))));
        env
    };

    let outcome = async {
        for _ in 0..args.processes {
            fleet.start(&env(&signers))?;
        }
        let store = SqlStore::connect(&db.url, 4, ProjectionSet::default()).await?;
        let manager = front_door(&anvil, &store, &signers)?;
        let report = chaos(
            &args,
            (min_gap, max_gap),
            &anvil,
            &store,
            &manager,
            &mut fleet,
            || env(&signers),
            chain.address,
            broker_proxy.as_ref(),
        )
        .await;
        let report = match report {
            Ok(mut report) => {
                let faults_ended = Instant::now();
                settle(&anvil, &store, &manager, &received).await?;
                report.recovered_secs = faults_ended.elapsed().as_secs_f64();
                check(&mut report, &anvil, &store, &received, chain.address, chain.start_block, &signers)
                    .await?;
                report
            }
            Err(e) => return Err(e),
        };
        store.close().await;
        Ok::<Report, anyhow::Error>(report)
    }
    .await;
    fleet.stop_all().await;
    collecting.abort();
    let _ = channel.queue_delete(&queue, QueueDeleteOptions::default()).await;
    let _ = connection.close(0, "chaos done").await;
    db.drop_now().await;
    if logs.is_some() {
        println!("  process logs kept in {}", dir.keep().display());
    }
    let mut report = outcome?;
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(proxy) = &rpc_proxy {
        report.rpc_faults = proxy.counts();
    }
    print_report(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        println!("  report written to {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    anyhow::ensure!(report.passed(), "the chaos run found a problem (see above)");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_config(
    dir: &std::path::Path,
    args: &ChaosBench,
    (rpc, amqp): (&str, &str),
    chain: &gemgate_testkit::SyntheticChain,
    db_url: &str,
    exchange: &str,
    queue: &str,
    signers: &[(String, String, Address)],
) -> anyhow::Result<std::path::PathBuf> {
    let abi = dir.join("LogSpammer.json");
    std::fs::write(&abi, Artifact::named("LogSpammer")?.json)?;
    let mut text = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = 6\n[cluster]\nlease_ttl = \"{ttl}\"\n\
         [txm]\nlease_ttl = \"{ttl}\"\npoll_interval = \"100ms\"\nrebroadcast_after = \"1s\"\n\
         [[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"100ms\"\n\
         [[contracts]]\nname = \"spammer\"\nchain = 31337\naddress = \"{address}\"\nabi = [\"{abi}\"]\nstart_block = {start}\n\
         [[sinks]]\nname = \"broker\"\nkind = \"amqp\"\nurl = \"{amqp}\"\nexchange = \"{exchange}\"\nqueue = \"{queue}\"\nfinality = \"latest\"\n",
        ttl = args.lease_ttl,
        address = chain.address,
        abi = abi.display(),
        start = chain.start_block,
    );
    for (name, _, _) in signers {
        text.push_str(&format!(
            "[[signers]]\nname = \"{name}\"\nkind = \"local\"\nkey_env = \"GEMGATE_CHAOS_KEY_{name}\"\nchains = [31337]\n"
        ));
    }
    let path = dir.join("gemgate.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Accepts requests into the shared ledger (the fleet's workers send them).
fn front_door(
    anvil: &Anvil,
    store: &SqlStore,
    signers: &[(String, String, Address)],
) -> anyhow::Result<Arc<TxManager>> {
    let rpc: Arc<dyn Broadcaster> = Arc::new(gemgate_chain::TxRpc::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse()?, "anvil".into())],
        gemgate_chain::RetryPolicy::default(),
    ));
    let mut named = HashMap::new();
    for (name, key, address) in signers {
        let signer = Arc::new(LocalSigner::from_hex(name, key).map_err(|e| anyhow::anyhow!("{e}"))?);
        named.insert(
            name.clone(),
            NamedSigner { name: name.clone(), chains: vec![anvil.chain_id()], address: *address, signer },
        );
    }
    Ok(Arc::new(TxManager::new(
        Arc::new(store.clone()),
        HashMap::from([(anvil.chain_id(), rpc)]),
        named,
        TxmOptions::default(),
    )))
}

/// The committed cursor (number and hash) of chain 31337.
async fn cursor(store: &SqlStore) -> Option<(u64, alloy::primitives::B256)> {
    store.cursor(31337).await.ok().flatten().map(|c| (c.number, c.hash))
}

#[allow(clippy::too_many_arguments)]
async fn chaos(
    args: &ChaosBench,
    (min_gap, max_gap): (Duration, Duration),
    anvil: &Anvil,
    store: &SqlStore,
    manager: &Arc<TxManager>,
    fleet: &mut Fleet,
    env: impl Fn() -> Vec<(String, String)>,
    address: Address,
    broker: Option<&gemgate_testkit::TcpProxy>,
) -> anyhow::Result<Report> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while holder(store, LeaseRole::Indexer, "31337").await.ok().flatten().is_none()
        || cursor(store).await.is_none()
    {
        anyhow::ensure!(Instant::now() < deadline, "no process started indexing within 120 s");
        anyhow::ensure!(fleet.exited().is_empty(), "a process exited: {:?}", fleet.exited());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spam = Spam::start(anvil, address);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Every commit's time (a changed cursor), to measure leader gaps afterwards.
    let commits: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let watching = {
        let (store, commits, mut stop) = (store.clone(), commits.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last = cursor(&store).await;
            while !*stop.borrow() {
                let now = cursor(&store).await;
                if now != last {
                    commits.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
                    last = now;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        })
    };
    let lagging = {
        let (store, provider, mut stop) = (store.clone(), anvil.provider(), stop.clone());
        tokio::spawn(async move {
            let mut max = 0u64;
            while !*stop.borrow() {
                if let (Ok(head), Some((at, _))) = (provider.get_block_number().await, cursor(&store).await) {
                    max = max.max(head.saturating_sub(at));
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            max
        })
    };
    let max_reorg = args.max_reorg;
    let reorging = {
        let (provider, mut stop) = (anvil.provider(), stop.clone());
        let mut rng = SplitMix64::new(args.seed ^ 0x5EED);
        tokio::spawn(async move {
            let mut reorgs = 0u32;
            loop {
                tokio::select! {
                    _ = stop.changed() => return reorgs,
                    _ = tokio::time::sleep(Duration::from_millis(rng.range(2_000, 5_000))) => {}
                }
                let depth = rng.range(1, max_reorg);
                let reorged = provider
                    .raw_request::<_, serde_json::Value>(
                        "anvil_reorg".into(),
                        (depth, Vec::<serde_json::Value>::new()),
                    )
                    .await;
                match reorged {
                    Ok(_) => reorgs += 1,
                    Err(error) => tracing::warn!(%error, "anvil_reorg failed"),
                }
            }
        })
    };
    let submitting = {
        let (manager, mut stop) = (manager.clone(), stop.clone());
        let to = anvil.accounts()[1];
        tokio::spawn(async move {
            let mut submitted = 0usize;
            for wave in 0u64.. {
                for i in 0..SIGNERS {
                    let mut request = Submit::transfer(
                        &format!("chaos-{wave}-{i}"),
                        &format!("s{i}"),
                        31337,
                        to,
                        U256::from(1u64),
                    );
                    request.gas_limit = Some(21_000);
                    match manager.submit(request).await {
                        Ok(_) => submitted += 1,
                        Err(error) => tracing::warn!(%error, "request not accepted"),
                    }
                }
                tokio::select! {
                    _ = stop.changed() => return submitted,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            submitted
        })
    };

    let mut report = Report::default();
    let mut rng = SplitMix64::new(args.seed);
    let mut leader_faults = Vec::new();
    let span = (max_gap - min_gap).as_millis() as u64;
    let until = args.minutes.map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
    let result = async {
        for i in 0u32.. {
            match until {
                Some(until) if Instant::now() >= until => break,
                None if i >= args.faults => break,
                _ => {}
            }
            tokio::time::sleep(min_gap + Duration::from_millis(rng.range(0, span))).await;
            // With --broker-cuts, one fault in four cuts every broker connection of the fleet.
            if let Some(broker) = broker
                && rng.range(0, 3) == 0
            {
                let cut = Duration::from_millis(rng.range(1_000, 5_000));
                broker.cut().await;
                tokio::time::sleep(cut).await;
                broker.restore();
                println!("  fault {:>2}: broker connections cut for {:.1} s", i + 1, cut.as_secs_f64());
                report.broker_cuts += 1;
                report.faults += 1;
                continue;
            }
            let names: Vec<String> = fleet.members.keys().cloned().collect();
            let leader = holder(store, LeaseRole::Indexer, "31337").await?.map(|l| l.holder);
            // A random process; every third fault the indexer's leader, so failovers are measured.
            let name = match &leader {
                Some(leader) if i % 3 == 0 && fleet.members.contains_key(leader) => leader.clone(),
                _ => names[rng.range(0, names.len() as u64 - 1) as usize].clone(),
            };
            let at = Instant::now();
            let kill = rng.range(0, 1) == 0;
            if leader.as_deref() == Some(name.as_str()) {
                leader_faults.push(at);
            }
            if kill {
                fleet.kill(&name).await?;
                let new = fleet.start(&env())?;
                println!(
                    "  fault {:>2}: SIGKILL {name}{}, restarted as {new}",
                    i + 1,
                    lead_mark(&leader, &name)
                );
                report.kills += 1;
            } else {
                fleet.pause(&name).await?;
                let paused = Duration::from_millis(rng.range(1_000, 6_000));
                tokio::time::sleep(paused).await;
                fleet.resume(&name).await?;
                println!(
                    "  fault {:>2}: SIGSTOP {name}{} for {:.1} s, then SIGCONT",
                    i + 1,
                    lead_mark(&leader, &name),
                    paused.as_secs_f64()
                );
                report.pauses += 1;
            }
            report.faults += 1;
            let exited = fleet.exited();
            anyhow::ensure!(exited.is_empty(), "a process exited by itself: {exited:?}");
        }
        Ok(())
    }
    .await;
    let _ = stop_tx.send(true);
    spam.stop().await;
    report.reorgs = reorging.await.unwrap_or_default();
    report.transactions = submitting.await.unwrap_or_default();
    report.max_lag_blocks = lagging.await.unwrap_or_default();
    let _ = watching.await;
    result?;
    let commits = commits.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.leader_faults = leader_faults.len() as u32;
    report.max_leader_gap_ms = leader_faults
        .iter()
        .map(|t| {
            commits.iter().find(|c| *c > t).map_or(u64::MAX, |c| c.duration_since(*t).as_millis() as u64)
        })
        .max()
        .unwrap_or(0);
    drop(stop);
    Ok(report)
}

fn lead_mark(leader: &Option<String>, name: &str) -> &'static str {
    if leader.as_deref() == Some(name) { " (the indexer's leader)" } else { "" }
}

/// Waits until the fleet has caught up with the chain, sent every request and delivered every message.
/// Only requests still in flight (queued, signed, submitted) are waited for: one that ended badly is the
/// check's to report. Giving up, it says what was left, with the leases of the moment.
async fn settle(
    anvil: &Anvil,
    store: &SqlStore,
    manager: &TxManager,
    received: &Mutex<Vec<(String, String)>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let head = anvil.block_number().await?;
        let at = cursor(store).await.map_or(0, |c| c.0);
        let states = manager.store.transaction_states().await?;
        let in_flight: Vec<String> = states
            .iter()
            .filter(|(s, n)| *n > 0 && ["queued", "signed", "submitted"].contains(&s.as_str()))
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let backlog = store.sink_backlogs(&["broker".to_string()]).await?.first().map_or(1, |b| b.backlog);
        let before = received.lock().unwrap_or_else(|e| e.into_inner()).len();
        if at >= head && in_flight.is_empty() && backlog == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = received.lock().unwrap_or_else(|e| e.into_inner()).len();
            let head_now = anvil.block_number().await?;
            if after == before && cursor(store).await.map_or(0, |c| c.0) >= head_now.saturating_sub(4) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let now = gemgate_cluster::unix_ms();
            let leases: Vec<String> = store
                .leases()
                .await?
                .iter()
                .map(|l| {
                    let live = if l.is_live(now) { "live" } else { "expired" };
                    format!("{:?}/{} held by {} ({live})", l.key.role, l.key.name, l.holder)
                })
                .collect();
            // What the node answers for the blocks the indexer stands on and goes to next.
            let mut blocks = Vec::new();
            for number in [at, at + 1] {
                let answer: Result<Option<serde_json::Value>, _> = anvil
                    .provider()
                    .raw_request("eth_getBlockByNumber".into(), (format!("0x{number:x}"), false))
                    .await;
                let shown = match answer {
                    Ok(Some(block)) => format!("{} {}", block["number"], block["hash"]),
                    Ok(None) => "null".to_string(),
                    Err(e) => format!("error {e}"),
                };
                blocks.push(format!("block {number}: {shown}"));
            }
            let stuck = stuck_senders(anvil, store).await?;
            anyhow::bail!(
                "the fleet did not settle within 180 s: indexed to block {at} of {head} ({}); transactions in \
                 flight: [{}]{}; broker backlog {backlog}; leases: [{}]",
                blocks.join(", "),
                in_flight.join(", "),
                stuck,
                leases.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// For each sender with requests in flight: the chain's mined and pending counts, the lowest nonce in flight,
/// and the request holding the nonce the chain is at (the one everything above waits for), with what the
/// node says of its transaction.
async fn stuck_senders(anvil: &Anvil, store: &SqlStore) -> anyhow::Result<String> {
    let mut records = Vec::new();
    let mut before = None;
    loop {
        let query =
            gemgate_domain::ledger::TxListQuery { before: before.take(), limit: 500, ..Default::default() };
        let page = store.list(&query).await?;
        records.extend(page.items.into_iter().map(|(record, _)| record));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let in_flight = |r: &gemgate_domain::ledger::TxRecord| {
        matches!(r.state, TxState::Queued | TxState::Signed | TxState::Submitted)
    };
    let senders: BTreeSet<String> =
        records.iter().filter(|r| in_flight(r)).map(|r| r.sender.clone()).collect();
    let mut said = String::new();
    for sender in senders {
        let address: Address = sender.parse().unwrap_or_default();
        let provider = anvil.provider();
        let mined = provider.get_transaction_count(address).await.unwrap_or_default();
        let pending = provider.get_transaction_count(address).pending().await.unwrap_or_default();
        let lowest = records.iter().filter(|r| r.sender == sender && in_flight(r)).map(|r| r.nonce).min();
        let gap = match records.iter().find(|r| r.sender == sender && r.nonce == mined) {
            Some(r) => {
                let node = match r.tx_hash.as_deref().and_then(|h| h.parse::<alloy::primitives::B256>().ok())
                {
                    Some(hash) => match provider.get_transaction_receipt(hash).await {
                        Ok(Some(receipt)) => format!(
                            "node: receipt in block {:?} {:?}",
                            receipt.block_number, receipt.block_hash
                        ),
                        Ok(None) => "node: no receipt".to_string(),
                        Err(e) => format!("node: {e}"),
                    },
                    None => "no transaction hash recorded".to_string(),
                };
                format!("{} {:?} block {:?} {:?}, {node}", r.id, r.state, r.block_number, r.block_hash)
            }
            None => "no request holds it".to_string(),
        };
        said.push_str(&format!(
            "; sender {sender}: mined {mined}, pending {pending}, lowest in flight {lowest:?}, nonce {mined}: {gap}"
        ));
    }
    Ok(said)
}

async fn check(
    report: &mut Report,
    anvil: &Anvil,
    store: &SqlStore,
    received: &Mutex<Vec<(String, String)>>,
    address: Address,
    start: u64,
    signers: &[(String, String, Address)],
) -> anyhow::Result<()> {
    let to = cursor(store).await.map_or(0, |c| c.0);
    let stored = crate::fleet::stored_events(store).await?;
    let keys: Vec<_> = stored.iter().map(|(k, _)| *k).collect();
    let on_chain = crate::fleet::chain_logs(anvil, address, start, to).await?;
    report.events = stored.len();
    report.chain_logs = on_chain.len();
    report.events_identical = keys == on_chain;

    let received = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.messages = received.len();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (id, status) in &received {
        *seen.entry((id.clone(), status.clone())).or_default() += 1;
    }
    report.duplicates = seen.values().map(|n| n - 1).sum();
    let canonical: BTreeSet<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
    report.canonical_missing =
        canonical.iter().filter(|id| !seen.contains_key(&(id.to_string(), "canonical".into()))).count();
    // Delivered, then removed by a reorg: each needs its retraction.
    let reverted: BTreeSet<&str> = seen
        .keys()
        .filter(|(id, status)| status == "canonical" && !canonical.contains(id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    report.retractions = seen.keys().filter(|(_, s)| s == "retracted").count();
    report.retractions_missing =
        reverted.iter().filter(|id| !seen.contains_key(&(id.to_string(), "retracted".into()))).count();

    for (name, _, address) in signers {
        let mut nonces: Vec<u64> = Vec::new();
        let mut before = None;
        loop {
            let query = gemgate_domain::ledger::TxListQuery {
                signer: Some(name.clone()),
                before: before.take(),
                limit: 500,
                ..Default::default()
            };
            let page = store.list(&query).await?;
            for (record, _) in &page.items {
                if ![TxState::Included, TxState::Safe, TxState::Finalized].contains(&record.state) {
                    report.nonce_problems.push(format!("{name}: {} ended {:?}", record.id, record.state));
                }
                nonces.push(record.nonce);
            }
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        nonces.sort();
        let expected: Vec<u64> = (0..nonces.len() as u64).collect();
        if nonces != expected {
            report.nonce_problems.push(format!("{name}: nonces {nonces:?} are not 0..{}", nonces.len()));
        }
        let count = anvil.provider().get_transaction_count(*address).await?;
        if count != nonces.len() as u64 {
            report
                .nonce_problems
                .push(format!("{name}: {count} transactions on chain for {} requests", nonces.len()));
        }
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "  faults: {} ({} SIGKILL + restart, {} SIGSTOP/SIGCONT; {} hit the indexer's leader); reorgs: {}",
        r.faults, r.kills, r.pauses, r.leader_faults, r.reorgs
    );
    println!(
        "  longest time from a leader fault to the next commit: {:.2} s",
        r.max_leader_gap_ms as f64 / 1e3
    );
    println!(
        "  events: {} in the database, {} from eth_getLogs, identical: {}",
        r.events, r.chain_logs, r.events_identical
    );
    println!(
        "  broker: {} messages, {} duplicates (same ids), {} canonical events missing, {} retractions ({} missing)",
        r.messages, r.duplicates, r.canonical_missing, r.retractions, r.retractions_missing
    );
    println!(
        "  transactions: {} requests; nonce problems: {}",
        r.transactions,
        if r.nonce_problems.is_empty() { "none".to_string() } else { r.nonce_problems.join("; ") }
    );
    if r.broker_cuts > 0 {
        println!("  broker cuts: {}", r.broker_cuts);
    }
    if !r.rpc_faults.is_empty() {
        let faults: Vec<String> =
            r.rpc_faults.iter().filter(|(k, _)| *k != "requests").map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  RPC: {} calls through the fault proxy; faults: {}",
            r.rpc_faults.get("requests").copied().unwrap_or(0),
            faults.join(", ")
        );
    }
    println!(
        "  most blocks behind the head: {}; settled {:.1} s after the last fault",
        r.max_lag_blocks, r.recovered_secs
    );
    println!("  {:.0} s in all; {}", r.seconds, if r.passed() { "PASSED" } else { "FAILED" });
}
