//! `gemgate bench txm`: requests/s from accepted to included through the transaction manager (the same
//! front door the API uses, the ledger on SQLite and Postgres, the workers signing, broadcasting and
//! watching) on anvil with automine, C requests in flight; beside it, in the same run and on a fresh anvil,
//! a plain alloy loop with its cached nonce manager sending the same transfers. Checks that every
//! request was included once, with contiguous nonces and no failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use gemgate_chain::{RetryPolicy, TxRpc};
use gemgate_domain::TxState;
use gemgate_domain::ports::Broadcaster;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::{Anvil, AnvilOptions, find_anvil};
use gemgate_txm::signers::LocalSigner;
use gemgate_txm::{NamedSigner, Submit, TxManager, TxmOptions};

use super::{create_pg_database, drop_pg_database, machine, rate, sqlite_url};

/// anvil's first account.
const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

#[derive(Debug, Clone, clap::Args)]
pub struct TxmBench {
    /// Requests sent through each contender.
    #[arg(long, default_value_t = 2_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: u64,
    /// Postgres server for the Postgres run (a database is created and dropped); "none" skips it.
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
    /// The manager's `txm.bump_after` (seconds): how long a transaction may sit unmined before it is
    /// re-priced. anvil with automine now and then parks a transaction that arrives while the block before
    /// it is being mined (foundry-rs/foundry#10122); only a replacement frees it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    bump_after: u64,
}

/// The baseline is run again on a fresh anvil when anvil parks one of its transactions (a plain loop has
/// no way out); this many tries at most.
const BASELINE_TRIES: u32 = 3;
/// No new receipt for this long: the baseline's anvil has parked a transaction.
const STALLED_AFTER: Duration = Duration::from_secs(10);

pub async fn run(bench: TxmBench) -> anyhow::Result<()> {
    println!(
        "gemgate bench txm: {} requests, {} in flight, anvil with automine, txm.bump_after {} s",
        bench.requests, bench.concurrency, bench.bump_after
    );
    println!("machine: {}", machine());
    let binary = find_anvil().await.context("finding anvil")?;

    let mut tries = 0;
    let (sent, elapsed) = loop {
        tries += 1;
        match alloy_loop(&binary, &bench).await? {
            Baseline::Done { sent, elapsed } => break (sent, elapsed),
            Baseline::Stalled { mined } if tries < BASELINE_TRIES => {
                println!(
                    "    (alloy: anvil parked nonce {mined} without mining it; the loop cannot recover, so it runs again on a fresh anvil)"
                );
            }
            Baseline::Stalled { mined } => {
                anyhow::bail!("the alloy baseline stalled {tries} times (anvil parked nonce {mined})")
            }
        }
    };
    let baseline = rate(sent, elapsed);
    println!(
        "  baseline: plain alloy loop (cached nonces)  {baseline:>8.0} tx/s  ({sent} in {:.2} s)",
        elapsed.as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let mut runs = vec![("SQLite".to_string(), sqlite_url(dir.path(), "txm-bench"), None)];
    if bench.postgres != "none" {
        let (url, name) = create_pg_database(&bench.postgres, "txm").await?;
        runs.push(("Postgres".into(), url, Some(name)));
    }
    for (name, url, pg_name) in runs {
        let outcome = manager_run(&binary, &bench, &url).await;
        if let Some(db) = pg_name {
            drop_pg_database(&bench.postgres, &db).await;
        }
        let report = outcome?;
        println!(
            "  gemgate txm on {name:<8}                    {:>8.0} req/s  ({} in {:.2} s; {:.0}% of the baseline)",
            rate(report.included, report.elapsed),
            report.included,
            report.elapsed.as_secs_f64(),
            100.0 * rate(report.included, report.elapsed) / baseline.max(1e-9)
        );
        println!(
            "    accepted in {:.2} s; nonces contiguous: {}; anomalies: {} (failed, replaced, lost or duplicate); re-priced: {}",
            report.accepted.as_secs_f64(),
            report.contiguous,
            report.anomalies,
            report.repriced
        );
        anyhow::ensure!(
            report.contiguous && report.anomalies == 0,
            "the manager broke a guarantee on {name}"
        );
    }
    Ok(())
}

async fn start_anvil(binary: &std::path::Path) -> anyhow::Result<Anvil> {
    Anvil::start_binary(binary, &AnvilOptions::default(), 0).await.context("starting anvil")
}

enum Baseline {
    Done {
        sent: u64,
        elapsed: Duration,
    },
    /// No receipt for `STALLED_AFTER`: anvil holds nonce `mined` in its queue and will not mine it.
    Stalled {
        mined: u64,
    },
}

/// The same transfers through alloy's provider with its cached nonce manager and a local wallet, C at a
/// time, each awaited to its receipt.
async fn alloy_loop(binary: &std::path::Path, bench: &TxmBench) -> anyhow::Result<Baseline> {
    let anvil = start_anvil(binary).await?;
    let signer: PrivateKeySigner = KEY.parse()?;
    let from = signer.address();
    let provider = ProviderBuilder::new()
        .with_cached_nonce_management()
        .wallet(EthereumWallet::from(signer))
        .connect_http(anvil.endpoint().parse()?)
        .erased();
    let to = anvil.accounts()[2];
    let fees = provider.estimate_eip1559_fees().await?;
    let started = Instant::now();
    let per_task = bench.requests / bench.concurrency;
    let tasks: Vec<_> = (0..bench.concurrency)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let request = TransactionRequest::default()
                        .with_from(from)
                        .with_to(to)
                        .with_value(U256::from(1u64))
                        .with_gas_limit(21_000)
                        .with_max_fee_per_gas(fees.max_fee_per_gas)
                        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
                    let pending = provider.send_transaction(request).await?;
                    let hash = *pending.tx_hash();
                    let waiting = Instant::now();
                    while provider.get_transaction_receipt(hash).await?.is_none() {
                        if waiting.elapsed() > STALLED_AFTER {
                            return anyhow::Ok(false);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                anyhow::Ok(true)
            })
        })
        .collect();
    let mut finished = true;
    for task in tasks {
        finished &= task.await??;
    }
    let elapsed = started.elapsed();
    if !finished {
        return Ok(Baseline::Stalled { mined: provider.get_transaction_count(from).await? });
    }
    let count = provider.get_transaction_count(from).await?;
    anyhow::ensure!(count == per_task * bench.concurrency, "alloy sent {count} transactions");
    println!("    (alloy: {count} transactions in {} blocks)", provider.get_block_number().await?);
    Ok(Baseline::Done { sent: count, elapsed })
}

struct Report {
    included: u64,
    accepted: Duration,
    elapsed: Duration,
    contiguous: bool,
    anomalies: u64,
    repriced: u64,
}

async fn manager_run(binary: &std::path::Path, bench: &TxmBench, url: &str) -> anyhow::Result<Report> {
    let anvil = start_anvil(binary).await?;
    let store = SqlStore::connect(url, 16, ProjectionSet::default()).await?;
    store.migrate().await?;
    let rpc: Arc<dyn Broadcaster> = Arc::new(TxRpc::new(
        anvil.chain_id(),
        vec![(anvil.endpoint().parse()?, "anvil".into())],
        RetryPolicy::default(),
    ));
    let local = LocalSigner::from_hex("bench", KEY)?;
    let address: Address = gemgate_domain::ports::Signer::address(&local);
    let signer = NamedSigner {
        name: "bench".into(),
        chains: vec![anvil.chain_id()],
        address,
        signer: Arc::new(local),
    };
    let options = TxmOptions {
        poll_interval: Duration::from_millis(50),
        bump_after: Duration::from_secs(bench.bump_after),
        ..TxmOptions::default()
    };
    let manager = Arc::new(TxManager::new(
        Arc::new(store.clone()),
        HashMap::from([(anvil.chain_id(), rpc)]),
        HashMap::from([("bench".to_string(), signer)]),
        options,
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = gemgate_txm::worker::spawn_all(&manager, "bench", &stopped);
    let to = anvil.accounts()[2];
    let chain_id = anvil.chain_id();
    let per_task = bench.requests / bench.concurrency;
    let total = per_task * bench.concurrency;

    let started = Instant::now();
    let clients: Vec<_> = (0..bench.concurrency)
        .map(|client| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..per_task {
                    let key = format!("bench-{client}-{i}");
                    let mut request = Submit::transfer(&key, "bench", chain_id, to, U256::from(1u64));
                    request.gas_limit = Some(21_000);
                    ids.push(manager.submit(request).await?.record().id.clone());
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await??);
    }
    let accepted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let states = store.transaction_states().await?;
        let done: u64 = states
            .iter()
            .filter(|(s, _)| ["included", "safe", "finalized"].contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum();
        if done >= total {
            break;
        }
        let ended: u64 = states
            .iter()
            .filter(|(s, _)| ["failed", "replaced", "cancelled", "expired"].contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum();
        anyhow::ensure!(ended == 0 && Instant::now() < deadline, "requests stopped short: {states:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    stop.send(true)?;
    for worker in workers {
        worker.await?;
    }

    let records = store.transactions_of(chain_id, &gemgate_txm::manager::address_text(address)).await?;
    let nonces: BTreeSet<u64> = records.iter().map(|r| r.nonce).collect();
    let hashes: BTreeSet<&str> = records.iter().filter_map(|r| r.tx_hash.as_deref()).collect();
    let on_chain = anvil.provider().get_transaction_count(address).await?;
    println!(
        "    (gemgate: {on_chain} transactions in {} blocks)",
        anvil.provider().get_block_number().await?
    );
    let contiguous = nonces.len() as u64 == total && nonces.iter().copied().eq(0..total);
    let done = records
        .iter()
        .filter(|r| matches!(r.state, TxState::Included | TxState::Safe | TxState::Finalized))
        .count() as u64;
    let anomalies =
        (total - done.min(total)) + (total - (hashes.len() as u64).min(total)) + on_chain.abs_diff(total);
    let mut repriced = 0;
    for id in &ids {
        repriced += store.attempts(id).await?.len().saturating_sub(1) as u64;
    }
    store.close().await;
    Ok(Report { included: done, accepted, elapsed, contiguous, anomalies, repriced })
}
