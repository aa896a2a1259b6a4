//! `gemgate bench relay`: signed ERC-2771 meta-transactions through `gemgate run`'s `POST /v1/relay` (the
//! release binary, a separate process; SQLite), C in flight, requests/s from the first request to the last
//! inclusion on anvil with automine; beside it, in the same run and through the same process, the same
//! number of `POST /v1/transactions` (the transaction manager's own rate), and the relay again with
//! batching (`executeBatch`). Users hold no ether: each retires carbon credits of its own Gemforce NFT (the
//! facet checks `_msgSender()`), so every relayed call is checked on chain afterwards: its forwarder nonce
//! spent once, its credits retired once, the sponsor's nonces contiguous.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use futures::StreamExt;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::{CarbonCreditFacet, GemforceForwarder};
use gemgate_testkit::relay::{self, Domain, Meta};
use gemgate_testkit::{AnvilOptions, Deployment, deploy_gemforce, find_anvil};
use serde_json::{Value, json};

use super::{machine, rate};

/// anvil's second account pays (the first owns the Diamond and mints the users' tokens).
const SPONSOR_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const API_KEY: &str = "bench-key";

#[derive(Debug, Clone, clap::Args)]
pub struct RelayBench {
    /// Requests sent through each contender.
    #[arg(long, default_value_t = 1_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Requests per executeBatch in the batched run (0 skips it).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(0..=100))]
    batch: u64,
}

/// The users of one relayed run, each with a token holding credits.
struct Users {
    keys: Vec<PrivateKeySigner>,
    tokens: Vec<U256>,
}

pub async fn run(bench: RelayBench) -> anyhow::Result<()> {
    println!(
        "gemgate bench relay: {} requests per contender, {} in flight, anvil with automine, SQLite, through gemgate run",
        bench.requests, bench.concurrency
    );
    println!("machine: {}", machine());
    let binary = find_anvil().await.context("finding anvil")?;
    let anvil = gemgate_testkit::Anvil::start_binary(&binary, &AnvilOptions::default(), 0)
        .await
        .context("starting anvil")?;
    let provider = anvil.provider();
    let d = deploy_gemforce(&provider, anvil.accounts()[0]).await?;
    let setup = Instant::now();
    let runs = if bench.batch > 0 { 2 } else { 1 };
    let mut groups = Vec::new();
    for _ in 0..runs {
        let keys: Vec<PrivateKeySigner> = (0..bench.requests).map(|_| PrivateKeySigner::random()).collect();
        let holders: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let tokens = relay::mint_many_with_credits(&provider, d.diamond, d.owner, &holders, 100).await?;
        groups.push(Users { keys, tokens });
    }
    println!(
        "  setup: {} users without ether, each with a token holding 100 credits, in {:.1} s",
        bench.requests * runs,
        setup.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let listen = format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    let db_url = format!("sqlite://{}", dir.path().join("gemgate.db").display());
    let config = dir.path().join("gemgate.toml");
    std::fs::write(&config, config_text(&anvil, &d, &db_url, &listen, bench.batch))?;
    let _service = Running(
        Command::new(std::env::current_exe()?)
            .args([
                "--log-filter",
                &std::env::var("GEMGATE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
                "run",
                "--config",
            ])
            .arg(&config)
            .env("GEMGATE_BENCH_SPONSOR_KEY", SPONSOR_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting gemgate run")?,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "gemgate run did not listen on {listen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(bench.concurrency).build()?;
    let store = SqlStore::connect(&db_url, 2, ProjectionSet::default()).await?;

    // The transaction manager's own rate through the same process: transfers from the sponsor.
    let to = anvil.accounts()[2];
    let chain_id = anvil.chain_id();
    let txm = timed(&store, bench.requests, bench.concurrency, |i| {
        let (http, url) = (http.clone(), format!("{base}/v1/transactions"));
        let body = json!({"signer": "sponsor", "chain_id": chain_id, "to": to.to_string(), "value": "1", "gas": 21_000});
        async move { post(&http, &url, &body, &format!("txm-{i}")).await }
    })
    .await?;
    let txm_rate = rate(bench.requests, txm.elapsed);
    println!(
        "  baseline: POST /v1/transactions            {txm_rate:>8.0} req/s  ({} in {:.2} s, accepted in {:.2} s)",
        bench.requests,
        txm.elapsed.as_secs_f64(),
        txm.accepted.as_secs_f64()
    );

    let domain = Domain::gemforce(chain_id, d.forwarder);
    let mut relayed = Vec::new();
    for (run, (relayer, users)) in ["bench", "batched"].iter().zip(&groups).enumerate() {
        let bodies: Vec<Value> = users
            .keys
            .iter()
            .zip(&users.tokens)
            .map(|(user, token)| {
                let meta = Meta {
                    to: d.diamond,
                    data: relay::retire_call(*token, 7),
                    gas: 150_000,
                    nonce: 0,
                    deadline: relay::deadline_in(3_600),
                };
                relay::body(relayer, user.address(), &domain, &meta, &relay::sign(user, &domain, &meta))
            })
            .collect();
        let result = timed(&store, bench.requests, bench.concurrency, |i| {
            let (http, url) = (http.clone(), format!("{base}/v1/relay"));
            let body = bodies[i as usize].clone();
            async move { post(&http, &url, &body, "").await }
        })
        .await?;
        let relay_rate = rate(bench.requests, result.elapsed);
        let name = if run == 0 {
            "gemgate POST /v1/relay (one execute each)".to_string()
        } else {
            format!("gemgate POST /v1/relay (executeBatch <= {})", bench.batch)
        };
        println!(
            "  {name:<43} {relay_rate:>8.0} req/s  ({} in {:.2} s, accepted in {:.2} s, {} transactions; {:.0}% of the baseline)",
            bench.requests,
            result.elapsed.as_secs_f64(),
            result.accepted.as_secs_f64(),
            result.transactions,
            100.0 * relay_rate / txm_rate.max(1e-9)
        );
        relayed.push(users);
    }

    // Every relayed request ran once as its user, and the sponsor's nonces have no gap.
    let forwarder = GemforceForwarder::new(d.forwarder, provider.clone());
    let carbon = CarbonCreditFacet::new(d.diamond, provider.clone());
    for users in &relayed {
        for (user, token) in users.keys.iter().zip(&users.tokens) {
            let nonce = forwarder.nonces(user.address()).call().await?;
            let credits = carbon.carbonCreditBalance(*token).call().await?;
            anyhow::ensure!(
                nonce == U256::from(1) && credits == U256::from(93),
                "user {}: forwarder nonce {nonce}, credits {credits} (expected 1 and 93)",
                user.address()
            );
        }
    }
    let sponsor: Address = SPONSOR_KEY.parse::<PrivateKeySigner>()?.address();
    let records = store.transactions_of(chain_id, &gemgate_txm::manager::address_text(sponsor)).await?;
    let on_chain = provider.get_transaction_count(sponsor).await?;
    let contiguous = records.iter().map(|r| r.nonce).eq(0..records.len() as u64);
    anyhow::ensure!(
        contiguous && on_chain == records.len() as u64,
        "sponsor: {} ledger records, {on_chain} on chain, contiguous {contiguous}",
        records.len()
    );
    println!(
        "  checked: every relayed request ran once as its user (forwarder nonce 1, 7 credits retired); sponsor nonces 0..{on_chain} contiguous"
    );
    Ok(())
}

fn config_text(
    anvil: &gemgate_testkit::Anvil,
    d: &Deployment,
    db_url: &str,
    listen: &str,
    batch: u64,
) -> String {
    let key_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(API_KEY));
    format!(
        r#"
[database]
url = "{db_url}"
[api]
listen = "{listen}"
public_reads = true
[[api.keys]]
name = "bench"
key_sha256 = "{key_sha256}"
scopes = ["read", "transact", "relay"]
[[chains]]
id = {chain}
rpc = ["{rpc}"]
[[contracts]]
name = "gemforce"
chain = {chain}
address = "{diamond}"
diamond = true
start_block = {start}
[[signers]]
name = "sponsor"
kind = "local"
key_env = "GEMGATE_BENCH_SPONSOR_KEY"
chains = [{chain}]
[txm]
poll_interval = "50ms"
bump_after = "1s"
{relayers}"#,
        chain = anvil.chain_id(),
        rpc = anvil.endpoint(),
        diamond = d.diamond,
        start = d.start_block,
        relayers = [("bench", 1), ("batched", batch.max(1))]
            .map(|(name, max)| format!(
                "[[relayers]]\nname = \"{name}\"\nchain = {}\nforwarder = \"{}\"\nsigner = \"sponsor\"\n\
                 [[relayers.allow]]\nto = \"gemforce\"\nfunctions = [\"retireCarbonCredits(uint256,uint256)\"]\n\
                 [relayers.batch]\nmax = {max}\nwait = \"20ms\"\n",
                anvil.chain_id(),
                d.forwarder
            ))
            .concat(),
    )
}

/// One contender's timing: all answered, and all included.
struct Timing {
    accepted: Duration,
    elapsed: Duration,
    transactions: usize,
}

/// Sends `requests` requests, `concurrency` at a time, and waits until every transaction they were
/// answered with is included (read from the ledger).
async fn timed<F, Fut>(
    store: &SqlStore,
    requests: u64,
    concurrency: usize,
    request: F,
) -> anyhow::Result<Timing>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let started = Instant::now();
    let ids = futures::stream::iter(0..requests)
        .map(request)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<std::collections::BTreeSet<String>>>()?;
    let accepted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut waiting: Vec<&String> = ids.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for id in waiting {
            let record = store
                .transaction(id)
                .await?
                .with_context(|| format!("transaction {id} is not in the ledger"))?;
            match record.state.as_str() {
                "included" | "safe" | "finalized" => {}
                "queued" | "signed" | "submitted" => still.push(id),
                other => anyhow::bail!("transaction {id} ended {other}: {:?}", record.error),
            }
        }
        waiting = still;
        anyhow::ensure!(Instant::now() < deadline, "{} transactions not included in time", waiting.len());
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(Timing { accepted, elapsed: started.elapsed(), transactions: ids.len() })
}

/// POSTs `body` (with an idempotency key when given) and returns the transaction id it was answered with.
async fn post(http: &reqwest::Client, url: &str, body: &Value, key: &str) -> anyhow::Result<String> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(serde_json::to_vec(body)?);
    if !key.is_empty() {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {}", String::from_utf8_lossy(&bytes));
    let answer: Value = serde_json::from_slice(&bytes)?;
    answer["id"].as_str().map(str::to_string).context("no id in the answer")
}

/// `gemgate run`, stopped when the bench ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
