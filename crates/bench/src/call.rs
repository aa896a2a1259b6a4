//! `gemgate bench call`: view calls of a Gemforce getter (`carbonCreditBalance(uint256)` on the sample
//! Diamond after a round of the traffic scenario) from C concurrent clients, through `gemgate serve`'s
//! `POST /v1/call` (the release binary, a separate process) and, in the same run, straight to anvil with
//! alloy. Three workloads: the same call at a pinned block again and again (the cache's case), distinct
//! calls at `latest` (nothing to cache: the proxy's overhead), and distinct calls in batches (Multicall3).
//! Every answer is checked against the direct one.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use anyhow::Context;
use futures::StreamExt;
use gemgate_testkit::{Anvil, AnvilOptions, Scenario, ScenarioOptions, deploy_gemforce, find_anvil};
use serde_json::{Value, json};

use super::{cpu_seconds, machine, pid_cpu_seconds, rate};

#[derive(Debug, Clone, clap::Args)]
pub struct CallBench {
    /// View calls per workload and contender.
    #[arg(long, default_value_t = 10_000)]
    calls: u64,
    /// Clients calling at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Calls per request in the batch workload.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(2..=100))]
    batch: u64,
}

/// The getter every workload calls.
const GETTER: &str = "carbonCreditBalance(uint256)";

/// Latencies of one workload, and the CPU each process spent on it.
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    calls: u64,
    /// CPU seconds of (gemgate serve, anvil, this client) during the run.
    cpu: [f64; 3],
}

/// CPU seconds so far of gemgate serve (`server`), anvil and this process.
fn cpu(server: u32) -> [f64; 3] {
    [pid_cpu_seconds(Some(server)), cpu_seconds("anvil"), pid_cpu_seconds(None)]
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0} calls/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            rate(self.calls, self.elapsed),
            self.percentile(0.5).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3
        )
    }

    /// CPU microseconds per call, by process.
    fn cpu_line(&self) -> String {
        let per_call = |seconds: f64| seconds * 1e6 / self.calls.max(1) as f64;
        let [server, anvil, client] = self.cpu.map(per_call);
        format!(
            "      CPU per call: gemgate serve {server:.0} us, anvil {anvil:.0} us, the clients {client:.0} us"
        )
    }
}

/// Runs `requests` requests, `concurrency` at a time; each request makes `per_request` calls.
async fn drive<F, Fut>(
    server: u32,
    requests: u64,
    per_request: u64,
    concurrency: usize,
    request: F,
) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let before = cpu(server);
    let started = Instant::now();
    let timed = futures::stream::iter(0..requests)
        .map(|i| {
            let call = request(i);
            async move {
                let at = Instant::now();
                call.await.map(|()| at.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    let after = cpu(server);
    let latencies = timed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let cpu = [0, 1, 2].map(|i| after[i] - before[i]);
    Ok(Run { elapsed, latencies, calls: requests * per_request, cpu })
}

fn calldata(token_id: u64) -> Bytes {
    let mut data = alloy::primitives::keccak256(GETTER)[..4].to_vec();
    data.extend_from_slice(&U256::from(token_id).to_be_bytes::<32>());
    data.into()
}

pub async fn run(bench: CallBench) -> anyhow::Result<()> {
    println!(
        "gemgate bench call: {} view calls per workload, {} clients, batches of {}, carbonCreditBalance(uint256) on the sample Diamond",
        bench.calls, bench.concurrency, bench.batch
    );
    println!("machine: {}", machine());
    let binary = find_anvil().await.context("finding anvil")?;
    let anvil = Anvil::start_binary(&binary, &AnvilOptions::default(), 0).await.context("starting anvil")?;
    let provider = anvil.provider();
    let deployment = deploy_gemforce(&provider, anvil.accounts()[0]).await?;
    Scenario::new(&deployment, anvil.accounts(), ScenarioOptions { seed: 1, rounds: 1 })?
        .run(&provider)
        .await?;
    let pinned = provider.get_block_number().await?;
    let diamond = deployment.diamond;

    let dir = tempfile::tempdir()?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[api]\nlisten = \"{listen}\"\npublic_reads = true\n\
             [calls]\nmax_batch = {}\n[[chains]]\nid = {}\nrpc = [\"{}\"]\n\
             [[contracts]]\nname = \"gemforce\"\nchain = {}\naddress = \"{diamond}\"\ndiamond = true\n",
            dir.path().join("gemgate.db").display(),
            bench.batch,
            anvil.chain_id(),
            anvil.endpoint(),
            anvil.chain_id()
        ),
    )?;
    let serve = Serving(
        Command::new(std::env::current_exe()?)
            .args(["--log-filter", "warn", "serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting gemgate serve")?,
    );
    let server = serve.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "gemgate serve did not listen on {listen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://{listen}/v1/call");
    let http = reqwest::Client::builder().pool_max_idle_per_host(bench.concurrency).build()?;
    let direct: DynProvider = ProviderBuilder::new().connect_http(anvil.endpoint().parse()?).erased();

    // What each token's balance is, straight from the node: every proxy answer is checked against it.
    let tokens = 16u64;
    let mut expected = Vec::new();
    for token in 0..tokens {
        let out = direct.call(request(diamond, token)).block(BlockId::number(pinned)).await?;
        expected.push(U256::from_be_slice(&out).to_string());
    }
    let expected = Arc::new(expected);
    let n = bench.calls;
    let c = bench.concurrency;

    println!("repeated calls at a pinned block ({pinned}):");
    let baseline = drive(server, n, 1, c, |_| {
        let direct = direct.clone();
        async move {
            direct.call(request(diamond, 1)).block(BlockId::number(pinned)).await?;
            Ok(())
        }
    })
    .await?;
    println!("  {}", baseline.line("baseline: eth_call straight to anvil (alloy)"));
    println!("{}", baseline.cpu_line());
    let proxied = drive(server, n, 1, c, |_| {
        let (http, base, expected) = (http.clone(), base.clone(), expected.clone());
        async move {
            let body = json!({"chain_id": 31337, "to": "gemforce", "function": "carbonCreditBalance", "args": ["1"], "block": pinned});
            check(&post(&http, &base, &body).await?, &expected[1])
        }
    })
    .await?;
    println!(
        "  {}  ({:.1}x the baseline's rate)",
        proxied.line("gemgate POST /v1/call (cached)"),
        rate(proxied.calls, proxied.elapsed) / rate(baseline.calls, baseline.elapsed).max(1e-9)
    );
    println!("{}", proxied.cpu_line());

    println!("distinct calls at latest (nothing cached):");
    // A token id per call that no earlier call used: each is a cache miss.
    let baseline = drive(server, n, 1, c, |i| {
        let direct = direct.clone();
        async move {
            direct.call(request(diamond, 1_000_000 + i)).await?;
            Ok(())
        }
    })
    .await?;
    println!("  {}", baseline.line("baseline: eth_call straight to anvil (alloy)"));
    println!("{}", baseline.cpu_line());
    let proxied = drive(server, n, 1, c, |i| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = json!({"chain_id": 31337, "to": "gemforce", "function": "carbonCreditBalance", "args": [(2_000_000 + i).to_string()]});
            check(&post(&http, &base, &body).await?, "0")
        }
    })
    .await?;
    println!(
        "  {}  (p50 {:.2}x the baseline's)",
        proxied.line("gemgate POST /v1/call (uncached)"),
        proxied.percentile(0.5).as_secs_f64() / baseline.percentile(0.5).as_secs_f64().max(1e-9)
    );
    println!("{}", proxied.cpu_line());

    let batches = n / bench.batch;
    println!("distinct calls at latest in batches of {} (one Multicall3 call per batch):", bench.batch);
    let batched = drive(server, batches, bench.batch, c, |i| {
        let (http, base, expected) = (http.clone(), base.clone(), expected.clone());
        let size = bench.batch;
        async move {
            // Half known tokens (checked), half fresh ids (uncached).
            let calls: Vec<Value> = (0..size)
                .map(|j| {
                    let token = if j % 2 == 0 { j % tokens } else { 3_000_000 + i * size + j };
                    json!({"chain_id": 31337, "to": "gemforce", "function": "carbonCreditBalance", "args": [token.to_string()], "block": pinned})
                })
                .collect();
            let answer = post(&http, &base, &Value::Array(calls)).await?;
            let results = answer["results"].as_array().context("no results")?;
            anyhow::ensure!(results.len() as u64 == size, "{} results for {size} calls", results.len());
            for (j, result) in results.iter().enumerate() {
                let want = if j % 2 == 0 { expected[j % tokens as usize].as_str() } else { "0" };
                check(result, want)?;
            }
            Ok(())
        }
    })
    .await?;
    println!(
        "  {}  (per call; p50/p99 per request of {})",
        batched.line("gemgate POST /v1/call (arrays)"),
        bench.batch
    );
    println!("{}", batched.cpu_line());

    let metrics = http.get(format!("http://{listen}/metrics")).send().await?.text().await?;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    println!(
        "proxy counters: cache hits {}, misses {}, coalesced {}, eth_call round trips {}, Multicall3 batches {}, round trips saved {}",
        value("gemgate_calls_cache_hits_total"),
        value("gemgate_calls_cache_misses_total"),
        value("gemgate_calls_coalesced_total"),
        value("gemgate_calls_rpc_calls_total"),
        value("gemgate_calls_multicall_batches_total"),
        value("gemgate_calls_rpc_saved_total"),
    );
    Ok(())
}

fn request(diamond: Address, token: u64) -> TransactionRequest {
    TransactionRequest::default().to(diamond).input(calldata(token).into())
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "POST /v1/call answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(serde_json::from_slice(&bytes)?)
}

/// The answer's decoded balance is `want`.
fn check(answer: &Value, want: &str) -> anyhow::Result<()> {
    let got = answer["decoded"]["arg0"].as_str();
    anyhow::ensure!(got == Some(want), "expected balance {want}, the proxy answered {answer}");
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `gemgate serve`, stopped when the bench ends.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
