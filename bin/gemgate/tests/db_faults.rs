//! The database going away under a running service: `gemgate run` (indexer, dispatcher, transaction workers,
//! API) on Postgres through a TCP proxy that the test cuts again and again, for 1-4 s each time, in the middle
//! of the indexer's commits, the dispatcher's deliveries and the transaction workers' ledger writes, while logs
//! keep coming, the chain reorgs and transactions keep being requested. The process must ride it out (no
//! exit) and, once the database stays up, the state must equal the chain: events == `eth_getLogs`, every
//! canonical event delivered to the webhook, every request mined once with contiguous nonces.
#![cfg(feature = "bench")]

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use gemgate_projections::ProjectionSet;
use gemgate_store::SqlStore;
use gemgate_testkit::bindings::LogSpammer;
use gemgate_testkit::{AnvilOptions, SplitMix64, TcpProxy, anvil_or_skip, build_log_chain};
use sha2::Digest as _;
use support::{KillOnDrop, TempPostgres, free_port, http};

const KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_again_and_again_under_indexing_delivery_and_transactions_loses_nothing() {
    let test = "postgres_cut_again_and_again_under_indexing_delivery_and_transactions_loses_nothing";
    let options =
        AnvilOptions { accounts: 3, block_time: Some(Duration::from_millis(500)), ..Default::default() };
    let Some(anvil) = anvil_or_skip(test, options).await.unwrap() else { return };
    let Some(database) = TempPostgres::create(test, "gemgate_dbfault").await else { return };
    let chain = build_log_chain(&anvil, 5, 40).await.unwrap();
    let direct = url::Url::parse(&database.url()).unwrap();
    let proxy = TcpProxy::start(&format!("{}:{}", direct.host_str().unwrap(), direct.port().unwrap_or(5432)))
        .await
        .unwrap();
    let mut through = direct.clone();
    through.set_port(Some(proxy.port())).unwrap();

    let signer =
        alloy::signers::local::PrivateKeySigner::from_slice(&hex::decode(&KEY[2..]).unwrap()).unwrap();
    let (hook_url, deliveries) = support::webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let api_key = "db-fault-key";
    let config = dir.path().join("gemgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{through}\"\nmax_connections = 4\n[api]\nlisten = \"{listen}\"\npublic_reads = false\n\
             [[api.keys]]\nname = \"backend\"\nkey_sha256 = \"{sha}\"\nscopes = [\"read\", \"transact\"]\n\
             [[chains]]\nid = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"200ms\"\n{contract}\
             [[sinks]]\nname = \"hooks\"\nkind = \"webhook\"\nurl = \"{hook_url}\"\nsecret_env = \"GEMGATE_TEST_HOOK\"\n\
             [[signers]]\nname = \"ops\"\nkind = \"local\"\nkey_env = \"GEMGATE_TEST_KEY\"\nchains = [31337]\n\
             [txm]\npoll_interval = \"100ms\"\nrebroadcast_after = \"1s\"\n",
            sha = hex::encode(sha2::Sha256::digest(api_key.as_bytes())),
            rpc = anvil.endpoint(),
            contract = support::spammer_contract(dir.path(), &chain),
        ),
    )
    .unwrap();
    let mut running = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_gemgate"))
            .args(["--log-filter", "warn", "run", "--config", config.to_str().unwrap()])
            .env("GEMGATE_TEST_KEY", KEY)
            .env("GEMGATE_TEST_HOOK", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let _: serde_json::Value = anvil
        .provider()
        .raw_request("anvil_setBalance".into(), (signer.address(), U256::from(10u64).pow(U256::from(20u64))))
        .await
        .unwrap();
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(Instant::now() < deadline, "gemgate run did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Logs, reorgs and transaction requests all along; the database cut five times.
    let traffic = {
        let (provider, from, address) = (anvil.provider(), anvil.accounts()[0], chain.address);
        tokio::spawn(async move {
            let spammer = LogSpammer::new(address, provider);
            let until = Instant::now() + Duration::from_secs(25);
            for i in 0u64.. {
                if Instant::now() > until {
                    break;
                }
                let _ = spammer.spam(U256::from(10), U256::from(i)).from(from).send().await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let requests = {
        let (base, to) = (base.clone(), anvil.accounts()[1]);
        tokio::spawn(async move {
            let bearer = format!("Bearer {api_key}");
            let until = Instant::now() + Duration::from_secs(25);
            let mut accepted = Vec::new();
            for i in 0u64.. {
                if Instant::now() > until {
                    break;
                }
                let body = serde_json::json!({"signer": "ops", "chain_id": 31337, "to": to, "value": "1"});
                let key = format!("db-fault-{i}");
                let headers = [("authorization", bearer.as_str()), ("idempotency-key", key.as_str())];
                // A request refused while the database is away is asked again with the same key.
                for _ in 0..50 {
                    match support::try_http("POST", &format!("{base}/v1/transactions"), &headers, Some(&body))
                        .await
                    {
                        Ok(answer) if answer.status < 300 => {
                            accepted.push(answer.body["id"].as_str().unwrap().to_string());
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            accepted
        })
    };
    let mut rng = SplitMix64::new(5);
    let mut reorgs = 0;
    for cut in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.range(1_500, 3_000))).await;
        if cut % 2 == 1 {
            anvil.reorg(rng.range(1, 4)).await.unwrap();
            reorgs += 1;
        }
        proxy.cut().await;
        tokio::time::sleep(Duration::from_millis(rng.range(1_000, 4_000))).await;
        proxy.restore();
        assert!(running.0.try_wait().unwrap().is_none(), "gemgate run exited during cut {cut}");
    }
    traffic.await.unwrap();
    let accepted = requests.await.unwrap();
    assert!(accepted.len() > 20, "requests kept being accepted between the cuts: {}", accepted.len());
    let _: serde_json::Value =
        anvil.provider().raw_request("evm_setIntervalMining".into(), (0u64,)).await.unwrap();
    // Mine what is still in the pool, one block a second, so every request can land.
    let mining = {
        let provider = anvil.provider();
        tokio::spawn(async move {
            loop {
                let _: Result<serde_json::Value, _> = provider.raw_request("evm_mine".into(), ()).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The database stays up now: everything converges.
    let store = SqlStore::connect(&database.url(), 2, ProjectionSet::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let bearer = format!("Bearer {api_key}");
    loop {
        let head = anvil.block_number().await.unwrap();
        let cursor =
            gemgate_domain::ports::Store::cursor(&store, 31337).await.unwrap().map_or(0, |c| c.number);
        let mut pending = 0;
        for id in &accepted {
            let (_, record) =
                http("GET", &format!("{base}/v1/transactions/{id}"), &[("authorization", &bearer)], None)
                    .await;
            if !["included", "safe", "finalized"].contains(&record["state"].as_str().unwrap_or_default()) {
                pending += 1;
            }
        }
        let stored = gemgate_bench::stored_logs(&store).await.unwrap().len();
        let delivered = delivered_ids(&deliveries.lock().unwrap());
        if cursor >= head && pending == 0 && delivered.len() >= stored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{test}: no convergence: cursor {cursor} of {head}, {pending} requests not mined, {} of {stored} \
             events delivered",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    mining.abort();
    assert!(running.0.try_wait().unwrap().is_none(), "gemgate run is still running");

    let cursor = gemgate_domain::ports::Store::cursor(&store, 31337).await.unwrap().unwrap();
    let stored = gemgate_bench::stored_events(&store).await.unwrap();
    let truth =
        gemgate_bench::chain_logs(&anvil, chain.address, chain.start_block, cursor.number).await.unwrap();
    let keys: Vec<_> = stored.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), truth.len(), "{test}: as many events as logs on the canonical chain");
    assert!(keys == truth, "{test}: the events are the canonical chain's logs");
    let delivered = delivered_ids(&deliveries.lock().unwrap());
    let missing: Vec<_> = stored.iter().filter(|(_, id)| !delivered.contains(id)).collect();
    assert!(missing.is_empty(), "{test}: every canonical event delivered; missing {}", missing.len());

    let mut nonces = Vec::new();
    for id in &accepted {
        let (_, record) =
            http("GET", &format!("{base}/v1/transactions/{id}"), &[("authorization", &bearer)], None).await;
        nonces.push(record["nonce"].as_u64().unwrap());
    }
    nonces.sort_unstable();
    assert_eq!(
        nonces,
        (0..accepted.len() as u64).collect::<Vec<_>>(),
        "{test}: contiguous nonces, one per request"
    );
    let mined = anvil.provider().get_transaction_count(signer.address()).await.unwrap();
    assert_eq!(mined, accepted.len() as u64, "{test}: each request on chain once");
    eprintln!(
        "{test}: 5 cuts, {reorgs} reorgs; {} events equal the chain and were delivered; {} requests mined once",
        keys.len(),
        accepted.len()
    );
    store.close().await;
}

/// The ids of the canonical events the webhook received.
fn delivered_ids(deliveries: &[String]) -> BTreeSet<String> {
    deliveries
        .iter()
        .filter_map(|d| d.split_once("\r\n\r\n").map(|(_, body)| body.to_string()))
        .filter_map(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
        .filter(|v| v["status"] == "canonical")
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}
