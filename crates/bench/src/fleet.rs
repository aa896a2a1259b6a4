//! A fleet of `gemgate` processes on one Postgres database, for the failover benchmark and the chaos
//! run: each started with its own `cluster.name` (and API port where it serves one), found again by that
//! name in the leases table, killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT) for real.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use gemgate_domain::cluster::{LeaseRecord, LeaseRole};
use gemgate_domain::ports::Leases;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;

/// A Postgres database made for one run and dropped after it.
#[derive(Debug)]
pub struct TempDatabase {
    server: SqlStore,
    name: String,
    pub url: String,
}

impl TempDatabase {
    pub async fn create(admin: &str, prefix: &str) -> anyhow::Result<Self> {
        let server = SqlStore::connect(admin, 1, ProjectionSet::default())
            .await
            .with_context(|| format!("connecting to Postgres at {admin}"))?;
        let name = format!("{prefix}_{}", std::process::id());
        server.execute_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        server.execute_admin(&format!("CREATE DATABASE {name}")).await?;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Ok(Self { server, url: format!("{base}/{name}"), name })
    }

    pub async fn drop_now(self) {
        let _ =
            self.server.execute_admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
    }
}

/// One process of the fleet.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    child: tokio::process::Child,
    pub paused: bool,
}

impl Member {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Processes running `gemgate ARGS --config CONFIG`, by name.
#[derive(Debug)]
pub struct Fleet {
    binary: PathBuf,
    config: PathBuf,
    args: Vec<String>,
    log: Option<PathBuf>,
    pub members: BTreeMap<String, Member>,
    started: u32,
}

impl Fleet {
    /// `args`: the subcommand (`index`, `run`, ...). With `log`, each process's stderr goes to
    /// `log/NAME.log` (else nowhere).
    pub fn new(binary: &Path, config: &Path, args: &[&str], log: Option<&Path>) -> Self {
        Self {
            binary: binary.into(),
            config: config.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: log.map(Path::to_path_buf),
            members: BTreeMap::new(),
            started: 0,
        }
    }

    /// Starts a new process under a new name (`p1`, `p2`, ...) with extra environment; returns the name.
    pub fn start(&mut self, env: &[(String, String)]) -> anyhow::Result<String> {
        self.started += 1;
        let name = format!("p{}", self.started);
        let stderr = match &self.log {
            Some(dir) => Stdio::from(std::fs::File::create(dir.join(format!("{name}.log")))?),
            None => Stdio::null(),
        };
        let filter = std::env::var("GEMGATE_BENCH_LOG").unwrap_or_else(|_| "warn".into());
        let child = tokio::process::Command::new(&self.binary)
            .args(["--log-filter", &filter])
            .args(&self.args)
            .arg("--config")
            .arg(&self.config)
            .env("GEMGATE__CLUSTER__NAME", &name)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.members.insert(name.clone(), Member { name: name.clone(), child, paused: false });
        Ok(name)
    }

    /// SIGKILL: no shutdown, no release of its leases; the member is gone.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let mut member = self.members.remove(name).with_context(|| format!("no member {name}"))?;
        if member.paused {
            signal(&member, "CONT").await?;
        }
        member.child.kill().await.context("killing a member")?;
        Ok(())
    }

    /// SIGSTOP: the process is frozen mid-whatever, its leases run out while it sleeps.
    pub async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        let member = self.members.get_mut(name).with_context(|| format!("no member {name}"))?;
        signal(member, "STOP").await?;
        member.paused = true;
        Ok(())
    }

    /// SIGCONT: the frozen process wakes up believing it still leads; its fence must stop it.
    pub async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        let member = self.members.get_mut(name).with_context(|| format!("no member {name}"))?;
        signal(member, "CONT").await?;
        member.paused = false;
        Ok(())
    }

    /// Members that exited by themselves (a crash), with their status and the end of their log.
    pub fn exited(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, member) in &mut self.members {
            if let Ok(Some(status)) = member.child.try_wait() {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|dir| std::fs::read_to_string(dir.join(format!("{name}.log"))).ok())
                    .map(|text| {
                        let lines: Vec<&str> = text.lines().collect();
                        lines[lines.len().saturating_sub(15)..].join("\n")
                    })
                    .unwrap_or_default();
                out.push((name.clone(), format!("{status}\n{log}")));
            }
        }
        out
    }

    /// Stops every member with SIGTERM (a clean shutdown), SIGKILL after a grace period.
    pub async fn stop_all(&mut self) {
        for member in self.members.values_mut() {
            if member.paused {
                let _ = signal(member, "CONT").await;
            }
            let _ = signal(member, "TERM").await;
        }
        for (_, mut member) in std::mem::take(&mut self.members) {
            if tokio::time::timeout(std::time::Duration::from_secs(10), member.child.wait()).await.is_err() {
                let _ = member.child.kill().await;
            }
        }
    }
}

async fn signal(member: &Member, name: &str) -> anyhow::Result<()> {
    let pid = member.pid().with_context(|| format!("{} has exited", member.name))?;
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .await
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// The live holder of a lease, if any.
pub async fn holder(store: &SqlStore, role: LeaseRole, name: &str) -> anyhow::Result<Option<LeaseRecord>> {
    let now = gemgate_cluster::unix_ms();
    Ok(store.leases().await?.into_iter().find(|l| l.key.role == role && l.key.name == name && l.is_live(now)))
}

/// A log as both sides can give it: block number, log index, block hash, transaction hash.
pub type LogKey = (u64, u64, alloy::primitives::B256, alloy::primitives::B256);

/// Every stored event, in chain order.
pub async fn stored_logs(store: &SqlStore) -> anyhow::Result<Vec<LogKey>> {
    Ok(stored_events(store).await?.into_iter().map(|(key, _)| key).collect())
}

/// Every stored event with its id, in chain order.
pub async fn stored_events(store: &SqlStore) -> anyhow::Result<Vec<(LogKey, String)>> {
    use gemgate_store::read::EventQuery;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.events(&EventQuery { after, limit: 1_000, ..EventQuery::default() }).await?;
        out.extend(
            page.events
                .iter()
                .map(|e| ((e.block_number, e.log_index, e.block_hash, e.tx_hash), e.id.to_string())),
        );
        let Some(next) = page.next else { break };
        let p: Vec<u64> = next.split(':').filter_map(|x| x.parse().ok()).collect();
        anyhow::ensure!(p.len() == 3, "unexpected page cursor {next:?}");
        after = Some((p[0], p[1], p[2]));
    }
    Ok(out)
}

/// The canonical chain's logs of `address` in `from..=to`, in chain order.
pub async fn chain_logs(
    anvil: &gemgate_testkit::Anvil,
    address: alloy::primitives::Address,
    from: u64,
    to: u64,
) -> anyhow::Result<Vec<LogKey>> {
    use alloy::providers::Provider;
    let filter = alloy::rpc::types::Filter::new().address(address).from_block(from).to_block(to);
    let logs = anvil.provider().get_logs(&filter).await.context("eth_getLogs")?;
    logs.iter()
        .map(|l| {
            Ok((
                l.block_number.context("log without block number")?,
                l.log_index.context("log without index")?,
                l.block_hash.context("log without block hash")?,
                l.transaction_hash.context("log without transaction hash")?,
            ))
        })
        .collect()
}
