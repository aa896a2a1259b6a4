//! Finding, installing and running anvil, and the chain manipulations tests need (mining, snapshots,
//! reorgs, dropping transactions).
//!
//! anvil is looked up in `ANVIL_BIN`, then on `PATH`, then in gemgate's cache folder; if it is nowhere, the
//! npm package `@foundry-rs/anvil` is installed into the cache (once; concurrent installs are safe because
//! each installs into its own folder and renames it into place).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Result, TestkitError};

/// The anvil release the harness installs when none is found (tested on this project's machines).
pub const ANVIL_VERSION: &str = "1.7.1";

/// anvil prints its address within a second; a cold start on a loaded machine can take longer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start anvil.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    pub chain_id: u64,
    /// `None`: a block per transaction (automine). `Some(t)`: a block every `t`.
    pub block_time: Option<Duration>,
    pub accounts: u32,
    /// Anything else to pass through (`--hardfork`, `--no-mining`, ...).
    pub extra_args: Vec<String>,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self { chain_id: 31337, block_time: None, accounts: 10, extra_args: Vec::new() }
    }
}

/// A running anvil, killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// anvil's home folder: anvil writes state snapshots of past blocks under `~/.foundry/anvil/tmp` and
    /// never removes them (75 GB after one day of benchmarks here); a private home goes with the node.
    _home: tempfile::TempDir,
    port: u16,
    chain_id: u64,
    accounts: Vec<Address>,
    provider: DynProvider,
}

impl Anvil {
    /// Starts anvil on a free port with default options.
    pub async fn start() -> Result<Self> {
        Self::start_with(AnvilOptions::default()).await
    }

    pub async fn start_with(options: AnvilOptions) -> Result<Self> {
        let binary = find_anvil().await?;
        Self::start_binary(&binary, &options, 0).await
    }

    /// Starts anvil on a chosen port (0 = any free port); used to restart a chain on the same address.
    pub async fn start_binary(binary: &Path, options: &AnvilOptions, port: u16) -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("gemgate-anvil-")
            .tempdir()
            .map_err(TestkitError::io("creating anvil's home folder"))?;
        let mut command = Command::new(binary);
        command
            .env("HOME", home.path())
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(["--chain-id", &options.chain_id.to_string()])
            .args(["--accounts", &options.accounts.to_string()])
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(block_time) = options.block_time {
            // anvil takes seconds; sub-second block times are given as fractions.
            command.args(["--block-time", &format!("{}", block_time.as_secs_f64())]);
        }
        let mut child =
            command.spawn().map_err(TestkitError::io(format!("starting {}", binary.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| TestkitError::Anvil("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) =
                lines.next_line().await.map_err(TestkitError::io("reading anvil output"))?
            {
                if let Some(address) = line.strip_prefix("Listening on ") {
                    let port = address.rsplit(':').next().and_then(|p| p.trim().parse::<u16>().ok());
                    return port
                        .ok_or_else(|| TestkitError::Anvil(format!("cannot read port from {line:?}")));
                }
            }
            Err(TestkitError::Anvil("exited before listening (is the port taken?)".into()))
        })
        .await
        .map_err(|_| TestkitError::Anvil(format!("did not start within {} s", START_TIMEOUT.as_secs())))??;
        // Keep draining stdout so anvil never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "anvil", "{line}");
                }
            });
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let url =
            endpoint.parse().map_err(|e| TestkitError::Anvil(format!("bad endpoint {endpoint}: {e}")))?;
        // No fillers: anvil fills nonce, gas and fees for its unlocked accounts itself. A client-side nonce
        // cache would go stale after `anvil_reorg` and leave every later transaction waiting on a gap.
        let provider = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        let accounts = provider.get_accounts().await.map_err(TestkitError::rpc("eth_accounts"))?;
        Ok(Self { child, _home: home, port, chain_id: options.chain_id, accounts, provider })
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:<port>`
    pub fn ws_endpoint(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The unlocked dev accounts (anvil signs for them with `eth_sendTransaction`).
    pub fn accounts(&self) -> &[Address] {
        &self.accounts
    }

    /// A provider for this node that sends from unlocked accounts (anvil fills nonce, gas and fees).
    pub fn provider(&self) -> DynProvider {
        self.provider.clone()
    }

    pub async fn block_number(&self) -> Result<u64> {
        self.provider.get_block_number().await.map_err(TestkitError::rpc("eth_blockNumber"))
    }

    /// Mines `blocks` empty blocks at once.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
            .await
            .map_err(TestkitError::rpc("anvil_mine"))?;
        Ok(())
    }

    /// Takes a snapshot of the whole chain state; `revert` returns to it.
    pub async fn snapshot(&self) -> Result<U256> {
        self.provider.raw_request("evm_snapshot".into(), ()).await.map_err(TestkitError::rpc("evm_snapshot"))
    }

    /// Reverts to a snapshot (dropping every block after it). Returns whether anvil accepted the id.
    pub async fn revert(&self, snapshot: U256) -> Result<bool> {
        self.provider
            .raw_request("evm_revert".into(), (snapshot,))
            .await
            .map_err(TestkitError::rpc("evm_revert"))
    }

    /// Replaces the last `depth` blocks with as many new, empty blocks: the same heights, new hashes.
    /// The transactions of the removed blocks go back to the pool and are mined again later.
    pub async fn reorg(&self, depth: u64) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>(
                "anvil_reorg".into(),
                (depth, Vec::<serde_json::Value>::new()),
            )
            .await
            .map_err(TestkitError::rpc("anvil_reorg"))?;
        Ok(())
    }

    /// Removes a pending transaction from the pool, as a node that evicts it would.
    pub async fn drop_transaction(&self, tx: B256) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_dropTransaction".into(), (tx,))
            .await
            .map_err(TestkitError::rpc("anvil_dropTransaction"))?;
        Ok(())
    }

    /// Turns automine on or off.
    pub async fn set_automine(&self, enabled: bool) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (enabled,))
            .await
            .map_err(TestkitError::rpc("evm_setAutomine"))?;
        Ok(())
    }

    /// Stops the node as an operator would (SIGTERM) and waits for it to exit: started with
    /// `--state FILE`, anvil writes its chain there first, and a node started later with the same file
    /// and port carries on with the same blocks.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(exited) => exited.map(|_| ()).map_err(TestkitError::io("waiting for anvil to exit")),
            Err(_) => self.child.kill().await.map_err(TestkitError::io("killing anvil")),
        }
    }

    /// Kills the node now (as a crash would) and waits for it to exit.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await.map_err(TestkitError::io("killing anvil"))
    }
}

/// Finds anvil: `ANVIL_BIN`, then `PATH`, then the cache folder; installs it with npm if it is nowhere.
pub async fn find_anvil() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ANVIL_BIN").map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TestkitError::Anvil(format!("ANVIL_BIN={} is not a file", path.display())))
        };
    }
    if let Some(path) = on_path("anvil") {
        return Ok(path);
    }
    let cache = cache_dir().join(format!("anvil-{ANVIL_VERSION}"));
    if let Some(path) = installed_binary(&cache) {
        return Ok(path);
    }
    // Tests in one process start anvil concurrently: one installs, the others wait and reuse it.
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = INSTALLING.lock().await;
    if let Some(path) = installed_binary(&cache) {
        return Ok(path);
    }
    install(&cache).await?;
    installed_binary(&cache).ok_or_else(|| {
        TestkitError::Install(format!("npm finished but no anvil binary is under {}", cache.display()))
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// `GEMGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/gemgate`, else `~/.cache/gemgate`, else a temp folder.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GEMGATE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("gemgate");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("gemgate"),
        None => std::env::temp_dir().join("gemgate-cache"),
    }
}

/// The native binary of the platform package (`@foundry-rs/anvil-linux-amd64/bin/anvil`, ...); the
/// package's own `bin` is a Node.js wrapper, which would put a second process between us and the node.
fn installed_binary(prefix: &Path) -> Option<PathBuf> {
    let scope = prefix.join("node_modules").join("@foundry-rs");
    let entries = std::fs::read_dir(&scope).ok()?;
    let native = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|e| e.path().join("bin").join("anvil"))
        .find(|p| p.is_file());
    native.or_else(|| Some(prefix.join("node_modules").join(".bin").join("anvil")).filter(|p| p.is_file()))
}

async fn install(target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(TestkitError::io(format!("creating {}", parent.display())))?;
    let staging = parent.join(format!(".anvil-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(TestkitError::io("creating the install folder"))?;
    eprintln!(
        "gemgate-testkit: anvil not found; installing @foundry-rs/anvil@{ANVIL_VERSION} with npm into {}",
        target.display()
    );
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&staging)
        .arg(format!("@foundry-rs/anvil@{ANVIL_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| TestkitError::Install(format!("cannot run npm (is Node.js installed?): {e}")))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(TestkitError::Install(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    // Another process may have finished first; either copy is complete, so keep whichever is in place.
    if std::fs::rename(&staging, target).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(())
}

/// Whether the tests run under CI (`CI=true`): there a missing service is a failure, elsewhere a loud skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// For tests: starts anvil, or reports why it cannot. Under `CI=true` a missing anvil is a failure (the
/// error is returned); elsewhere the test is skipped, loudly, with `None`.
pub async fn anvil_or_skip(test: &str, options: AnvilOptions) -> Result<Option<Anvil>> {
    match Anvil::start_with(options).await {
        Ok(anvil) => Ok(Some(anvil)),
        Err(error) if under_ci() => Err(error),
        Err(error) => {
            eprintln!("SKIPPED {test}: anvil is not available ({error}); set CI=true to make this a failure");
            Ok(None)
        }
    }
}
