//! Several `gemgate dispatch` processes on one Postgres database share the sinks: each sink is owned by
//! one process at a time (a lease with a fencing token), two processes take one sink each, a SIGKILLed
//! owner's sink moves to the survivor within the failover target, and a process that joins later gets its
//! share back. Across the handover every event still arrives (at least once, with its stable id), and the
//! first arrival of each id keeps the chain's order.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gemgate_domain::cluster::{LeaseRecord, LeaseRole};
use gemgate_domain::ports::{Leases, OutboxStore};
use gemgate_store::SqlStore;

use crate::common::Backend;
use crate::every_sink::first_arrivals;
use crate::probes::{Kind, Probe, Received};
use crate::spammed_store_on;

struct Dispatch(Child);

impl Drop for Dispatch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dispatch(config: &std::path::Path, name: &str) -> Dispatch {
    Dispatch(
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "dispatch", "--config", config.to_str().unwrap()])
            .env("GEMGATE__CLUSTER__NAME", name)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// The live sink leases: sink name -> holder.
async fn owners(store: &SqlStore) -> Vec<(String, String)> {
    let now = gemgate_cluster::unix_ms();
    let leases: Vec<LeaseRecord> = store.leases().await.unwrap();
    leases
        .into_iter()
        .filter(|l| l.key.role == LeaseRole::Sink && l.is_live(now))
        .map(|l| (l.key.name, l.holder))
        .collect()
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < timeout, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Every id arrived, and the first arrivals are in chain order (the LogSpammer's events share one ordering key).
fn check_arrivals(sink: &str, received: &[Received], ids: &[String]) -> usize {
    let (firsts, counts) = first_arrivals(received);
    let distinct: BTreeSet<&str> = firsts.iter().map(|r| r.id.as_str()).collect();
    let expected: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(distinct, expected, "{sink}: every event arrives across the handover, nothing else");
    for pair in firsts.windows(2) {
        assert!(
            pair[0].ordering < pair[1].ordering,
            "{sink}: {:?} first arrived after {:?}",
            pair[1].ordering,
            pair[0].ordering
        );
    }
    counts.values().map(|n| n - 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatchers_share_the_sinks_hand_over_on_sigkill_and_rebalance_when_one_joins() {
    let test = "dispatchers_share_the_sinks_hand_over_on_sigkill_and_rebalance_when_one_joins";
    let Some(alpha) = Probe::start(Kind::Amqp, test, false).await else { return };
    let Some(beta) = Probe::start(Kind::Amqp, test, false).await else { return };
    let Some((_anvil, db, ids)) = spammed_store_on(test, 20_000, Backend::Postgres).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[cluster]\nlease_ttl = \"2s\"\n{}{}",
            db.url,
            alpha.sink_toml("alpha"),
            beta.sink_toml("beta")
        ),
    )
    .unwrap();

    let mut processes = vec![("d1", dispatch(&config, "d1")), ("d2", dispatch(&config, "d2"))];
    // Two processes, two sinks: one each (whichever started first hands one over once the other is up).
    wait_until("each of the two processes owns one sink", Duration::from_secs(30), || async {
        let owners = owners(&db.store).await;
        owners.len() == 2 && owners[0].1 != owners[1].1
    })
    .await;
    let position = |sink: &'static str| {
        let store = db.store.clone();
        async move { store.sink_position(sink).await.unwrap().position }
    };

    // Kill alpha's owner as soon as it has delivered something: mid-stream.
    wait_until("alpha's delivery starts", Duration::from_secs(30), || async { position("alpha").await > 0 })
        .await;
    let victim = owners(&db.store).await.into_iter().find(|(s, _)| s == "alpha").unwrap().1;
    let at_kill = position("alpha").await;
    let index = processes.iter().position(|(n, _)| *n == victim).unwrap();
    let (_, mut killed) = processes.remove(index);
    killed.0.kill().unwrap(); // SIGKILL: its leases are not released, they must expire
    killed.0.wait().unwrap();
    let survivor = processes[0].0;
    let moved = wait_until("alpha moves to the surviving process", Duration::from_secs(10), || async {
        owners(&db.store).await.iter().any(|(s, h)| s == "alpha" && h == survivor)
    })
    .await;
    assert!(moved < Duration::from_secs(5), "alpha moved after {moved:?}, beyond the 5 s failover target");
    eprintln!(
        "{test}: killed {victim} at alpha position {at_kill} of {}; alpha moved to {survivor} in {moved:?}",
        ids.len()
    );

    let total = ids.len();
    alpha
        .wait_for(Duration::from_secs(120), "every event at alpha", |r| first_arrivals(r).0.len() >= total)
        .await;
    beta.wait_for(Duration::from_secs(120), "every event at beta", |r| first_arrivals(r).0.len() >= total)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let duplicates =
        check_arrivals("alpha", &alpha.received(), &ids) + check_arrivals("beta", &beta.received(), &ids);
    eprintln!("{test}: {duplicates} duplicate deliveries across the handover (same ids)");

    // A process joins: the survivor holds both sinks, more than its share of one; it hands one over.
    processes.push(("d3", dispatch(&config, "d3")));
    let rebalanced = wait_until("the new process gets one sink", Duration::from_secs(30), || async {
        let owners = owners(&db.store).await;
        owners.len() == 2
            && owners.iter().any(|(_, h)| h == "d3")
            && owners.iter().any(|(_, h)| h == survivor)
    })
    .await;
    eprintln!("{test}: rebalanced onto d3 in {rebalanced:?}");
    for sink in ["alpha", "beta"] {
        assert!(position(sink).await as usize >= total, "{sink}: the stored position covers every message");
    }
    drop(processes);
    alpha.cleanup().await;
    beta.cleanup().await;
}
