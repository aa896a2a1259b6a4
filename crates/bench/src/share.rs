//! `gemgate bench share`: delivery from one Postgres outbox to two RabbitMQ sinks by one `gemgate dispatch`
//! process, then by two (each owning one sink through its lease), in the same run: messages/s from the
//! moment the sinks are resumed to the moment both have delivered everything.

use std::time::{Duration, Instant};

use anyhow::Context;
use gemgate_domain::cluster::LeaseRole;
use gemgate_domain::ports::{Leases, OutboxStore};
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};

use crate::fleet::{Fleet, TempDatabase};

#[derive(Debug, Clone, clap::Args)]
pub struct ShareBench {
    /// Messages in the outbox (each sink delivers all of them).
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
}

const SINKS: [&str; 2] = ["alpha", "beta"];

pub async fn run(args: ShareBench) -> anyhow::Result<()> {
    println!(
        "gemgate bench share: {} messages to each of 2 RabbitMQ sinks from Postgres, 1 vs 2 `gemgate dispatch` processes; {}",
        args.messages,
        crate::machine()
    );
    let db = TempDatabase::create(&args.postgres, "gemgate_share").await?;
    let store = SqlStore::connect(&db.url, 4, ProjectionSet::default()).await?;
    store.migrate().await?;
    crate::deliver::fill_outbox(&store, args.messages).await?;
    let tag = std::process::id();
    let connection = crate::deliver::connect(&args.amqp).await?;
    let channel = connection.create_channel().await?;
    let dir = tempfile::tempdir()?;
    let mut config = format!("[database]\nurl = \"{}\"\n[cluster]\nlease_ttl = \"2s\"\n", db.url);
    for sink in SINKS {
        let (exchange, queue) =
            (format!("gemgate-share-x-{sink}-{tag}"), format!("gemgate-share-q-{sink}-{tag}"));
        crate::deliver::declare(&channel, &exchange, &queue).await?;
        config.push_str(&format!(
            "[[sinks]]\nname = \"{sink}\"\nkind = \"amqp\"\nurl = \"{}\"\nexchange = \"{exchange}\"\nqueue = \"{queue}\"\n",
            args.amqp
        ));
    }
    let path = dir.path().join("gemgate.toml");
    std::fs::write(&path, config)?;
    let binary = std::env::current_exe()?;
    let result = async {
        let one = measure(&binary, &path, &store, args.messages, 1).await?;
        for sink in SINKS {
            channel
                .queue_purge(&format!("gemgate-share-q-{sink}-{tag}"), QueuePurgeOptions::default())
                .await?;
        }
        let two = measure(&binary, &path, &store, args.messages, 2).await?;
        Ok::<_, anyhow::Error>((one, two))
    }
    .await;
    for sink in SINKS {
        let _ = channel
            .queue_delete(&format!("gemgate-share-q-{sink}-{tag}"), QueueDeleteOptions::default())
            .await;
    }
    let _ = connection.close(0, "bench done").await;
    store.close().await;
    db.drop_now().await;
    let (one, two) = result?;
    let total = (args.messages * SINKS.len() as u64) as f64;
    println!(
        "  1 process, 2 sinks   {:>10.0} msg/s ({:.2} s for {} messages)",
        total / one.as_secs_f64(),
        one.as_secs_f64(),
        total
    );
    println!(
        "  2 processes, 1 sink each {:>6.0} msg/s ({:.2} s), {:.2}x",
        total / two.as_secs_f64(),
        two.as_secs_f64(),
        one.as_secs_f64() / two.as_secs_f64()
    );
    Ok(())
}

/// Pauses the sinks and rewinds them, starts `processes` dispatchers, waits until the sinks are shared
/// (with 2 processes: one each), resumes the sinks and times the drain.
async fn measure(
    binary: &std::path::Path,
    config: &std::path::Path,
    store: &SqlStore,
    messages: u64,
    processes: usize,
) -> anyhow::Result<Duration> {
    for sink in SINKS {
        store.set_sink_paused(sink, true).await?;
        store.rewind_sink(sink, 0).await?;
    }
    let mut fleet = Fleet::new(binary, config, &["dispatch"], None);
    for _ in 0..processes {
        fleet.start(&[])?;
    }
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = gemgate_cluster::unix_ms();
            let owners: Vec<String> = store
                .leases()
                .await?
                .into_iter()
                .filter(|l| l.key.role == LeaseRole::Sink && l.is_live(now))
                .map(|l| l.holder)
                .collect();
            let distinct: std::collections::BTreeSet<&String> = owners.iter().collect();
            if owners.len() == SINKS.len() && distinct.len() == processes {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the sinks were not shared within 60 s: {owners:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let started = Instant::now();
        for sink in SINKS {
            store.set_sink_paused(sink, false).await?;
        }
        loop {
            let mut done = true;
            for sink in SINKS {
                done &= store.sink_position(sink).await?.position >= messages;
            }
            if done {
                break Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "delivery did not finish in 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    .await;
    fleet.stop_all().await;
    result.context("measuring the dispatchers")
}
