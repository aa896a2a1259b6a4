//! `gemgate demo`: the whole service on one machine. It starts a local chain (anvil), deploys the sample
//! Gemforce contracts, writes a configuration for them (`gemgate-demo.toml`), starts the indexer and the
//! API on SQLite (`gemgate-demo.db`), drives the seeded traffic scenario while the indexer follows the
//! chain, delivers the Diamond's events to a local webhook receiver (Standard Webhooks signatures,
//! binary-mode CloudEvents, each verified on arrival), and prints what was indexed and what to open.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use gemgate_domain::ports::Store;
use gemgate_projections::gemforce::tables::TRADE_DEALS;
use gemgate_telemetry::Metrics;
use gemgate_testkit::{Anvil, AnvilOptions, Scenario, ScenarioOptions, deploy_gemforce, find_anvil};

use gemgate_wiring as wiring;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Rounds of traffic (each emits every Gemforce event at least once).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seed of the traffic generator: the same seed gives the same traffic.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Port for the local chain; 8545 by default, any free port if that one is taken.
    #[arg(long, default_value_t = 8545)]
    chain_port: u16,
    /// Address of the API; 127.0.0.1:8080 by default, any free port if that one is taken.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Folder for the demo's database and configuration (recreated on every run).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Exit after printing the summary instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// How long the indexer may take to reach the chain's head after the traffic stops.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("gemgate demo: starting a local chain (anvil)...");
    let binary = find_anvil().await.context("finding or installing anvil")?;
    let options = AnvilOptions::default();
    let anvil = match Anvil::start_binary(&binary, &options, args.chain_port).await {
        Ok(anvil) => anvil,
        Err(_) if args.chain_port != 0 => {
            println!("  port {} is taken; using a free port", args.chain_port);
            Anvil::start_binary(&binary, &options, 0).await.context("starting anvil")?
        }
        Err(e) => return Err(e).context("starting anvil"),
    };
    println!("  chain {} at {}", anvil.chain_id(), anvil.endpoint());
    tracing::info!(chain_id = anvil.chain_id(), rpc = %anvil.endpoint(), "chain started");

    println!("deploying the sample Gemforce Diamond and companions...");
    let provider = anvil.provider();
    let deployment =
        deploy_gemforce(&provider, anvil.accounts()[0]).await.context("deploying the sample contracts")?;
    tracing::info!(diamond = %deployment.diamond, facets = deployment.facets.len(), "sample contracts deployed");
    println!("  Diamond            {}", deployment.diamond);
    for (name, address) in &deployment.facets {
        println!("    facet {name:<27} {address}");
    }
    println!("  USDC (6 decimals)  {}", deployment.usdc);
    println!("  VABB / VABI        {} / {}", deployment.vabb, deployment.vabi);
    println!("  Invoice NFT        {}", deployment.invoice_nft);
    println!("  IdentityFactory    {}", deployment.identity_factory);
    println!("  Treasury           {}", deployment.treasury);
    println!("  ERC2771Forwarder   {}", deployment.forwarder);
    println!("  Multicall3         {}", deployment.multicall3);

    // The API address: the requested one, or any free port.
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(_) => {
            println!("  {} is taken; the API uses a free port", args.listen);
            tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the API")?
        }
    };
    let listen = listener.local_addr()?;

    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let db = args.dir.join("gemgate-demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let config_path = args.dir.join("gemgate-demo.toml");
    // The demo's signer is anvil's last funded account, its key in a file beside the configuration (never in
    // the file itself); the demo's API key is printed below (a local demo: do not reuse it).
    let key_path = args.dir.join("gemgate-demo-signer.key");
    std::fs::write(&key_path, DEMO_SIGNER_KEY).with_context(|| format!("writing {}", key_path.display()))?;
    let secret_path = args.dir.join("gemgate-demo-webhook.secret");
    std::fs::write(&secret_path, DEMO_WEBHOOK_SECRET)
        .with_context(|| format!("writing {}", secret_path.display()))?;
    let (hooks, received) = webhook_receiver().await?;
    let config = demo_config(&db, listen, &anvil, &deployment, &key_path, (&hooks, &secret_path));
    std::fs::write(&config_path, &config).with_context(|| format!("writing {}", config_path.display()))?;
    let settings = gemgate_config::load(Some(&config_path)).context("loading the demo configuration")?;
    println!("indexing into {} (configuration: {})", db.display(), config_path.display());

    let store = wiring::open_store(&settings).await?;
    let metrics = Metrics::new();
    let (stop, rx) = wiring::shutdown_channel();
    let mut tasks = tokio::task::JoinSet::new();
    // Leases as `gemgate run` takes them: this process leads the chain (GET /v1/cluster, gemgate status).
    let holder = wiring::lease_holder(&settings);
    let cluster = gemgate_cluster::Cluster::new(
        std::sync::Arc::new(store.clone()),
        &holder,
        &["index", "dispatch", "api", "txm"],
        settings.cluster.lease_ttl,
    );
    cluster.join().await.context("announcing the demo in the leases table")?;
    {
        let (heartbeat, rx) = (cluster.clone(), rx.clone());
        tasks.spawn(async move {
            heartbeat.heartbeat(rx).await;
            Ok(())
        });
    }
    for mut indexer in wiring::indexers(&settings, &store, &metrics).await? {
        let (rx, cluster) = (rx.clone(), cluster.clone());
        let key = gemgate_domain::cluster::LeaseKey::indexer(indexer.chain_id());
        tasks.spawn(async move { cluster.lead(key, &mut indexer, rx, None).await.context("indexer") });
    }
    for mut dispatcher in wiring::dispatchers(&settings, &store, &metrics)? {
        let (rx, cluster) = (rx.clone(), cluster.clone());
        let key = gemgate_domain::cluster::LeaseKey::sink(dispatcher.sink_name());
        tasks.spawn(async move { cluster.lead(key, &mut dispatcher, rx, None).await.context("dispatcher") });
    }
    let txm = wiring::tx_manager(&settings, &store, &metrics).await?;
    if let Some(manager) = &txm {
        for worker in gemgate_txm::worker::spawn_all(manager, &holder, &rx) {
            tasks.spawn(async move { worker.await.context("transaction worker") });
        }
    }
    let mut state = wiring::app_state(&settings, &store, metrics.clone(), txm.clone())?;
    state.cluster = Some(cluster.local());
    let calls = state.calls.clone();
    let relayer = state.relay.clone();
    let router = gemgate_api::router(state);
    let api_rx = rx.clone();
    tasks.spawn(
        async move { gemgate_api::serve(listener, router, wiring::stopped(api_rx)).await.context("API") },
    );

    println!(
        "driving {} round(s) of traffic (seed {}) while the indexer follows the chain...",
        args.rounds, args.seed
    );
    let scenario = Scenario::new(
        &deployment,
        anvil.accounts(),
        ScenarioOptions { seed: args.seed, rounds: args.rounds },
    )?;
    let report = scenario.run(&provider).await.context("running the traffic scenario")?;
    tracing::info!(
        transactions = report.transactions,
        events = report.total_events(),
        first_block = report.first_block,
        last_block = report.last_block,
        "scenario finished"
    );
    println!(
        "  {} transactions in blocks {}..={}, {} logs emitted",
        report.transactions,
        report.first_block,
        report.last_block,
        report.total_events()
    );

    let head = anvil.block_number().await?;
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let cursor = store.cursor(anvil.chain_id()).await?.map_or(0, |c| c.number);
        if cursor >= head {
            break;
        }
        if let Some(result) = tasks.try_join_next() {
            result.context("a demo task stopped")??;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the indexer did not reach block {head} within {} s (at {cursor})",
                CATCH_UP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("indexed up to block {head}:");
    for (event, count) in store.event_counts().await? {
        let name = if event.is_empty() { "(unknown topic0, stored raw)" } else { &event };
        println!("    {count:>4}  {name}");
    }
    for deal in store.projection_rows(&TRADE_DEALS, None, None, 100).await? {
        println!(
            "  trade deal {}: {}, funded {} of {} (USDC, 6 decimals), repaid {}, participants {}",
            deal["trade_deal_id"].as_str().unwrap_or("?"),
            deal["name"],
            deal["funded"].as_str().unwrap_or("0"),
            deal["funding_target"].as_str().unwrap_or("?"),
            deal["fully_repaid"],
            deal["participants"].as_array().map_or(0, Vec::len)
        );
    }
    if let Some(manager) = &txm {
        demo_transaction(manager, &anvil).await?;
    }
    if let Some(calls) = &calls {
        demo_calls(calls, &anvil, &deployment).await?;
    }
    let relay_body = args.dir.join("gemgate-demo-relay.json");
    if let (Some(relayer), Some(manager)) = (&relayer, &txm) {
        demo_relay(relayer, manager, &provider, &deployment, &relay_body).await?;
    }
    demo_webhooks(&store, &hooks, &received).await?;
    let snapshot = args.dir.join("gemgate-demo-snapshot.jsonl");
    demo_snapshot(&store, &snapshot).await?;
    demo_sync(&settings, &store, &metrics).await?;
    let base = format!("http://{listen}");
    println!("done in {:.1} s. Try:", started.elapsed().as_secs_f64());
    for path in [
        "/v1/status",
        "/v1/events?event=TradeDealCreated",
        "/v1/trade-deals",
        "/v1/trade-deals/1",
        "/v1/projections/listings",
        "/v1/openapi.json",
        "/metrics",
    ] {
        println!("  curl -s '{base}{path}'");
    }
    println!(
        "  curl -sN '{base}/v1/stream'        (every event as server-sent events, live; resume with Last-Event-ID)"
    );
    println!(
        "  curl -s -X POST '{base}/v1/transactions' -H 'Authorization: Bearer {DEMO_API_KEY}' -H 'Idempotency-Key: try-1' \\\n      \
         -H 'Content-Type: application/json' -d '{{\"signer\":\"demo\",\"chain_id\":{},\"to\":\"{}\",\"value\":\"1000\"}}'",
        anvil.chain_id(),
        anvil.accounts()[1]
    );
    println!("  curl -s '{base}/v1/transactions/<id from the answer>'");
    println!(
        "  curl -s '{base}/v1/audit' -H 'Authorization: Bearer {DEMO_ADMIN_KEY}'   (who made each write: key, \
         jwt:<subject> or parse:<user>; writes are rate-limited per caller, see [api.rate_limits])"
    );
    println!(
        "  webhooks: signed per Standard Webhooks with the secret in {} (verify with any published library); \
         CloudEvents with format = \"cloudevents\"",
        secret_path.display()
    );
    if relayer.is_some() {
        println!(
            "  curl -s -X POST '{base}/v1/relay' -H 'Authorization: Bearer {DEMO_API_KEY}' -H 'Content-Type: application/json' \\\n      \
             -d @{}   (a meta-transaction the user above signed: 202 the first time, 200 with the same transaction after)",
            relay_body.display()
        );
    }
    println!(
        "  curl -s -X POST '{base}/v1/call' -H 'Content-Type: application/json' \\\n      \
         -d '{{\"chain_id\":{},\"to\":\"gemforce\",\"function\":\"carbonCreditBalance\",\"args\":[\"1\"],\"block\":\"latest\"}}'   (view calls; an array is one Multicall3 batch)",
        anvil.chain_id()
    );
    println!(
        "  gemgate call --config {} gemforce ownerOf 1 --block latest   (the same from the command line)",
        config_path.display()
    );
    println!("  curl -s '{base}/v1/snapshots'   (contract-state snapshot runs)   curl -s '{base}/v1/drift'");
    println!(
        "  gemgate snapshot run credits --config {}   gemgate reconcile --config {}",
        config_path.display(),
        config_path.display()
    );
    println!(
        "  gemgate replay --from-store --config {}   (rebuild every projection from the stored events; the API \
         serves the old tables until the swap)",
        config_path.display()
    );
    println!(
        "  GEMGATE__DATABASE__URL=sqlite://gemgate-copy.db gemgate snapshot import {} --config {}   (a new \
         database from the snapshot; `gemgate index` then follows on from its block)",
        snapshot.display(),
        config_path.display()
    );
    println!(
        "  curl -s '{base}/v1/transactions?state=included&limit=10'   (newest first; next page with after=<next>)"
    );
    println!(
        "  curl -si '{base}/v1/status' -H 'Origin: https://app.example'   (CORS: any origin may read; see api.cors_origins)"
    );
    println!(
        "  curl -s '{base}/v1/cluster'   curl -s '{base}/ready'   gemgate status --config {}   (who leads the chain \
         and holds the signers' leases; on Postgres, more `gemgate run` processes stand by and take over, see deploy/)",
        config_path.display()
    );
    println!("  sqlite3 {} 'select event, count(*) from events group by event'", db.display());
    println!("  gemgate run --config {}   (the same service, once this demo stops)", config_path.display());

    if !args.once {
        println!("The chain ({}) and the API keep running; Ctrl-C stops them.", anvil.endpoint());
        wiring::stopped(rx).await;
        println!("stopping.");
    }
    let _ = stop.send(true);
    while let Some(result) = tasks.join_next().await {
        result.context("a demo task panicked")??;
    }
    store.close().await;
    Ok(())
}

/// anvil's tenth account (funded, unused by the traffic scenario): the demo's signer.
const DEMO_SIGNER_KEY: &str = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6";
/// The demo's API key (scopes read, transact and relay); only its SHA-256 is in the configuration.
const DEMO_API_KEY: &str = "gemgate-demo-key";
/// The demo's operator key (scope admin: the sink endpoints and the audit log).
const DEMO_ADMIN_KEY: &str = "gemgate-demo-admin-key";
/// The demo webhook sink's Standard Webhooks secret (a local demo: do not reuse it).
const DEMO_WEBHOOK_SECRET: &str = "whsec_Z2VtZ2F0ZS1kZW1vLXdlYmhvb2stc2VjcmV0LW9mLTMyYg==";

/// What the demo's webhook receiver saw: deliveries whose signature verified, by CloudEvents type, and
/// refused ones.
#[derive(Debug, Default)]
struct Received {
    by_type: std::collections::BTreeMap<String, usize>,
    refused: usize,
}

/// A receiver on a free loopback port that verifies every delivery's Standard Webhooks signature and reads
/// its CloudEvents `ce-type`; its URL and what it saw.
async fn webhook_receiver() -> anyhow::Result<(String, std::sync::Arc<std::sync::Mutex<Received>>)> {
    use axum::http::{HeaderMap, StatusCode};
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let received: std::sync::Arc<std::sync::Mutex<Received>> = std::sync::Arc::default();
    let seen = received.clone();
    let receive = move |headers: HeaderMap, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let verified = gemgate_domain::signature::verify_webhook(&[DEMO_WEBHOOK_SECRET], header, &body);
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if verified.is_err() {
                seen.refused += 1;
                return StatusCode::UNAUTHORIZED;
            }
            *seen.by_type.entry(header("ce-type").unwrap_or("(none)").to_string()).or_default() += 1;
            StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hooks", axum::routing::post(receive));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

/// Waits until the webhook sink has delivered its backlog, and says what arrived.
async fn demo_webhooks(
    store: &gemgate_store::SqlStore,
    url: &str,
    received: &std::sync::Mutex<Received>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backlog = store.sink_backlogs(&["hooks".to_string()]).await?.remove(0);
        if backlog.backlog == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the webhook sink still has {} to deliver",
            backlog.backlog
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = received.lock().unwrap_or_else(|e| e.into_inner());
    let total: usize = seen.by_type.values().sum();
    println!(
        "delivered {total} Diamond events to {url}: each signed per Standard Webhooks and verified on arrival \
         ({} refused), as binary-mode CloudEvents of {} types (e.g. {})",
        seen.refused,
        seen.by_type.len(),
        seen.by_type.keys().find(|t| t.contains("TradeDealCreated")).map_or("none", String::as_str)
    );
    Ok(())
}

/// A user who holds no ether retires carbon credits of their own token through the relayer (the facet sees
/// them as `_msgSender()`; the demo's signer pays), and signs a second request, written to `body_path` for
/// the reader to send with curl.
async fn demo_relay(
    relayer: &gemgate_relay::Relayer,
    manager: &gemgate_txm::TxManager,
    provider: &alloy::providers::DynProvider,
    d: &gemgate_testkit::Deployment,
    body_path: &Path,
) -> anyhow::Result<()> {
    use gemgate_testkit::relay::{self, Domain, Meta};
    let user = alloy::signers::local::PrivateKeySigner::random();
    let token = relay::mint_with_credits(provider, d.diamond, d.owner, user.address(), 100).await?;
    let domain = Domain::gemforce(d.chain_id, d.forwarder);
    let meta = |amount, nonce| Meta {
        to: d.diamond,
        data: relay::retire_call(token, amount),
        gas: 150_000,
        nonce,
        deadline: relay::deadline_in(24 * 3600),
    };
    let first = meta(5, 0);
    let request = gemgate_relay::ForwardRequest {
        from: user.address(),
        to: first.to,
        value: alloy_primitives::U256::ZERO,
        gas: alloy_primitives::U256::from(first.gas),
        nonce: alloy_primitives::U256::ZERO,
        deadline: alloy_primitives::aliases::U48::from(first.deadline),
        data: first.data.clone(),
    };
    let input = gemgate_relay::RelayInput {
        relayer: Some("carbon".into()),
        chain_id: d.chain_id,
        request: gemgate_relay::SignedRequest { request, signature: relay::sign(&user, &domain, &first) },
        domain: None,
    };
    let id =
        relayer.relay(input, Some("demo")).await.context("relaying the demo request")?.record().id.clone();
    println!(
        "relayed a meta-transaction: user {} (no ether) retired 5 carbon credits of token {token}; the signer paid: request {id}",
        user.address()
    );
    wait_included(manager, &id, "the relayed request").await?;
    let second = meta(3, 1);
    let body = relay::body("carbon", user.address(), &domain, &second, &relay::sign(&user, &domain, &second));
    std::fs::write(body_path, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("writing {}", body_path.display()))?;
    Ok(())
}

/// Sends one transfer through the transaction manager and follows it to inclusion, printing its states.
/// A batch of view calls through the proxy, as `POST /v1/call` with an array makes them: Gemforce getters
/// by name (the Diamond's built-in ABIs), a token by signature, and one call that reverts.
/// Runs the contract-state snapshot once and a reconciliation round, and prints what they found.
async fn demo_sync(
    settings: &gemgate_config::Settings,
    store: &gemgate_store::SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    for job in wiring::snapshot_jobs(settings, store, metrics)? {
        let run = job.run(|_| {}).await?;
        println!(
            "contract-state snapshot {}: {} rows at block {} in {} Multicall3 batch(es), {} ms (table {})",
            run.name, run.stats.rows, run.block_number, run.stats.batches, run.stats.duration_ms, run.table
        );
    }
    if let Some(reconciler) = wiring::reconciler(settings, store, metrics)? {
        let report = reconciler.run_once().await?;
        let block = report.blocks.first().map_or(0, |(_, b)| b.number);
        println!(
            "reconciliation at finalized block {block}: {} rows compared with the contracts' views, {} drifted",
            report.rows_checked,
            report.drift.len()
        );
    }
    Ok(())
}

/// Exports a verifiable snapshot of the projections (see `gemgate snapshot`).
async fn demo_snapshot(store: &gemgate_store::SqlStore, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let summary = store.export_snapshot(&mut std::io::BufWriter::new(file)).await?;
    let block = summary.header.chains.first().map_or(0, |c| c.block_number);
    println!(
        "exported a projection snapshot: {} records at block {block}, sha256:{} ({})",
        summary.records,
        summary.digest,
        path.display()
    );
    Ok(())
}

async fn demo_calls(
    calls: &gemgate_api::ViewCalls,
    anvil: &Anvil,
    d: &gemgate_testkit::Deployment,
) -> anyhow::Result<()> {
    let chain_id = anvil.chain_id();
    let usdc = d.usdc.to_string();
    let holder = serde_json::json!(anvil.accounts()[1].to_string());
    let one = serde_json::json!("1");
    let missing = serde_json::json!("999999");
    // (shown as, to, function, args): the USDC token is not a configured contract, so its signature says
    // how to decode the result.
    let inputs: [(&str, &str, &str, &[serde_json::Value]); 5] = [
        ("gemforce", "gemforce", "owner", &[]),
        ("gemforce", "gemforce", "ownerOf", std::slice::from_ref(&one)),
        ("gemforce", "gemforce", "carbonCreditBalance", std::slice::from_ref(&one)),
        ("usdc", &usdc, "balanceOf(address) returns (uint256)", std::slice::from_ref(&holder)),
        ("gemforce", "gemforce", "ownerOf", std::slice::from_ref(&missing)),
    ];
    let mut prepared = Vec::new();
    for (_, to, function, args) in inputs {
        let input =
            gemgate_calls::CallInput { chain_id, to, function: Some(function), args, ..Default::default() };
        prepared.push(calls.catalog.prepare(&input).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let batch: Vec<_> = prepared.iter().map(|p| p.call.clone()).collect();
    let answers = calls.proxy.call_many(&batch).await.context("the demo view calls")?;
    let mut block = None;
    println!("view calls through the proxy (one Multicall3 batch):");
    for ((p, answer), (shown_as, _, function, args)) in prepared.iter().zip(answers).zip(inputs) {
        let result = calls.catalog.explain(p, &answer?);
        block = block.or(result.block_number);
        let shown = match (&result.decoded, &result.revert) {
            (_, Some(revert)) => format!("reverts: {}", revert.reason),
            (Some(decoded), None) => decoded.to_string(),
            (None, None) => result.result.clone().unwrap_or_default(),
        };
        let args: Vec<String> = args.iter().map(|a| a.as_str().unwrap_or_default().to_string()).collect();
        let name = function.split('(').next().unwrap_or(function);
        println!("    {shown_as}.{name}({}) = {shown}", args.join(", "));
    }
    println!("  at block {}", block.unwrap_or_default());
    Ok(())
}

async fn demo_transaction(manager: &gemgate_txm::TxManager, anvil: &Anvil) -> anyhow::Result<()> {
    let request = gemgate_txm::Submit::transfer(
        "demo-transfer",
        "demo",
        anvil.chain_id(),
        anvil.accounts()[1],
        alloy_primitives::U256::from(1_000_000_000_000_000u64),
    );
    let id = manager.submit(request).await.context("submitting the demo transfer")?.record().id.clone();
    println!("sent 0.001 ETH through the transaction manager: request {id}");
    wait_included(manager, &id, "the demo transfer").await
}

/// Follows request `id` to inclusion and prints where it went.
async fn wait_included(manager: &gemgate_txm::TxManager, id: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = manager.store.transaction(id).await?.with_context(|| format!("{what} vanished"))?;
        if matches!(
            record.state,
            gemgate_domain::TxState::Included
                | gemgate_domain::TxState::Safe
                | gemgate_domain::TxState::Finalized
        ) {
            println!(
                "  {:?} in block {} as {} (every state change is also in the outbox as transaction.<state>)",
                record.state,
                record.block_number.unwrap_or_default(),
                record.tx_hash.unwrap_or_default()
            );
            return Ok(());
        }
        anyhow::ensure!(!record.state.is_terminal(), "{what} ended {:?}: {:?}", record.state, record.error);
        anyhow::ensure!(Instant::now() < deadline, "{what} is still {:?} after 30 s", record.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn demo_config(
    db: &Path,
    listen: std::net::SocketAddr,
    anvil: &Anvil,
    d: &gemgate_testkit::Deployment,
    signer_key: &Path,
    (hooks, webhook_secret): (&str, &Path),
) -> String {
    use sha2::Digest;
    let chain = anvil.chain_id();
    let mut config = format!(
        "# Written by `gemgate demo` for its local chain.\n[database]\nurl = \"sqlite://{}\"\n\n[api]\nlisten = \"{listen}\"\n\
         # Any web page may read (GET) from a browser; writes stay same-origin.\ncors_origins = [\"*\"]\n\n\
         [[chains]]\nid = {chain}\nrpc = [\"{}\"]\nws = [\"{}\"]\n# Heads arrive by websocket; polling is the fallback.\npoll_interval = \"1s\"\n",
        db.display(),
        anvil.endpoint(),
        anvil.ws_endpoint()
    );
    let contracts = [
        ("gemforce", d.diamond, "diamond"),
        ("identity-factory", d.identity_factory, "gemforce"),
        ("treasury", d.treasury, "gemforce"),
    ];
    for (name, address, flag) in contracts {
        config.push_str(&format!(
            "\n[[contracts]]\nname = \"{name}\"\nchain = {chain}\naddress = \"{address}\"\n{flag} = true\nstart_block = {}\n",
            d.start_block
        ));
    }
    config.push_str(&format!(
        "\n[[api.keys]]\nname = \"demo\"\nkey_sha256 = \"{}\"\nscopes = [\"read\", \"transact\", \"relay\"]\n\n\
         [[api.keys]]\nname = \"demo-admin\"\nkey_sha256 = \"{}\"\nscopes = [\"admin\"]\n\n\
         # A token bucket per caller: 50 writes a second, bursts of 100 (429 with Retry-After beyond).\n\
         [api.rate_limits]\ntransact = {{ per_second = 50, burst = 100 }}\n\n\
         [[signers]]\nname = \"demo\"\nkind = \"local\"\nkey_file = \"{}\"\nchains = [{chain}]\n\n[txm]\npoll_interval = \"100ms\"\n",
        hex::encode(sha2::Sha256::digest(DEMO_API_KEY.as_bytes())),
        hex::encode(sha2::Sha256::digest(DEMO_ADMIN_KEY.as_bytes())),
        signer_key.display()
    ));
    config.push_str(&format!(
        "\n# The Diamond's events to a local receiver: Standard Webhooks signatures, binary-mode CloudEvents.\n\
         [[sinks]]\nname = \"hooks\"\nkind = \"webhook\"\nurl = \"{hooks}\"\nsecret_file = \"{}\"\n\
         events = [\"gemforce.*\"]\nformat = \"cloudevents\"\ncontent_mode = \"binary\"\n",
        webhook_secret.display()
    ));
    config.push_str(&format!(
        "\n# Users sign ERC-2771 requests for the forwarder; the demo signer pays (POST /v1/relay).\n\
         [[relayers]]\nname = \"carbon\"\nchain = {chain}\nforwarder = \"{}\"\nsigner = \"demo\"\n\
         [[relayers.allow]]\nto = \"gemforce\"\nfunctions = [\"retireCarbonCredits(uint256,uint256)\"]\n\
         [relayers.per_user]\nrequests = 20\nwindow = \"1h\"\n",
        d.forwarder
    ));
    config.push_str(
        "\n# Every token's carbon-credit balance as the contract reports it, at one block, every 10 blocks;\n\
         # reconciliation compares it (and the built-in Gemforce checks) with the event-derived projection.\n\
         [[snapshots]]\nname = \"credits\"\ncontract = \"gemforce\"\nfunction = \"carbonCreditBalance\"\n\
         keys = { table = \"carbon_credits\", column = \"token_id\" }\nblock = \"latest\"\nevery = \"10 blocks\"\n\
         compare = \"balance\"\n\n[reconcile]\nevery = \"10 blocks\"\n",
    );
    config
}
