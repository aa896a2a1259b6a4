//! Builds components from settings: the store, each chain's source and decoder, indexers, dispatchers, the
//! API state; and runs the chosen parts together until shutdown.

use std::sync::Arc;

use anyhow::{Context, bail};
use gemgate_api::{AppState, GemforceContract, SinkInfo, ViewCalls};
use gemgate_calls::{CallMetrics, CallOptions, CallProxy, Catalog};
use gemgate_chain::{EvmChain, RetryPolicy, RpcMetrics, TxRpc, WsEndpoint};
use gemgate_config::{ChainSettings, Settings, parse_abi};
use gemgate_domain::cluster::LeaseKey;
use gemgate_domain::ports::{Broadcaster, ViewCaller};
use gemgate_domain::ports::{ChainSource, OutboxStore, Store};
use gemgate_indexer::{Indexer, IndexerMetrics, IndexerSettings};
use gemgate_outbox::{DispatchMetrics, DispatchSettings, Dispatcher};
use gemgate_projections::gemforce::{gemforce_abis, gemforce_events};
use gemgate_projections::{ContractAbi, Decoder, ProjectionSet};
use gemgate_relay::{RelayMetrics, Relayer};
use gemgate_store::SqlStore;
use gemgate_telemetry::Metrics;
use gemgate_txm::{RawAllow, TxManager, TxmOptions};

/// Connects to the configured database and applies migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<SqlStore> {
    let url = settings.database.url.expose().as_str();
    let gemforce = settings.contracts.iter().filter(|c| c.gemforce).map(|c| (c.chain, c.address));
    // A process paused inside a transaction must not hold its row locks longer than a lease lasts.
    let idle = settings.database.idle_in_transaction_timeout.unwrap_or(settings.cluster.lease_ttl);
    let projections = ProjectionSet::gemforce_for(gemforce);
    let store = SqlStore::connect_with(url, settings.database.max_connections, projections, Some(idle))
        .await
        .with_context(|| format!("connecting to {}", settings.database.url))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// A configured contract's ABIs: its files, and the built-in Gemforce ABIs for a Gemforce contract.
fn contract_abis(
    contract: &gemgate_config::ContractSettings,
) -> anyhow::Result<Vec<alloy::json_abi::JsonAbi>> {
    let mut abis = Vec::new();
    for path in &contract.abi {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        abis.push(parse_abi(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    }
    if contract.gemforce {
        abis.extend(gemforce_abis());
    }
    Ok(abis)
}

/// The decoder of one chain: every configured contract on it with its ABIs.
pub fn decoder(settings: &Settings, chain_id: u64) -> anyhow::Result<Decoder> {
    let mut contracts = Vec::new();
    for contract in settings.contracts.iter().filter(|c| c.chain == chain_id) {
        let mut abi = ContractAbi::new(&contract.name, chain_id, contract.address, &contract_abis(contract)?);
        if contract.gemforce {
            abi = abi.with_events(gemforce_events());
        }
        contracts.push(abi);
    }
    Ok(Decoder::new(contracts))
}

/// The view-call proxy over every configured chain, with the configured contracts' functions and errors
/// (`None` without chains).
pub fn view_calls(settings: &Settings, metrics: &Metrics) -> anyhow::Result<Option<Arc<ViewCalls>>> {
    if settings.chains.is_empty() {
        return Ok(None);
    }
    let catalog = catalog(settings)?;
    let chains = settings
        .chains
        .iter()
        .map(|chain| (Arc::new(tx_rpc(chain, metrics)) as Arc<dyn ViewCaller>, chain.multicall3))
        .collect();
    let c = &settings.calls;
    let options =
        CallOptions { cache_bytes: c.cache_bytes, max_batch: c.max_batch, head_max_age: c.head_max_age };
    let proxy = CallProxy::new(chains, options).with_metrics(CallMetrics::register(metrics));
    Ok(Some(Arc::new(ViewCalls { proxy, catalog })))
}

/// The `[[snapshots]]` jobs, their functions resolved against the ABIs and their keys' tables and columns
/// against the projections (each problem named by its key).
pub fn snapshot_jobs(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Vec<gemgate_calls::snapshot::SnapshotJob>> {
    use gemgate_calls::snapshot::{Every, SnapshotJob, SnapshotSpec};
    use gemgate_config::SnapshotSchedule;
    use gemgate_domain::FinalityLevel;
    use gemgate_domain::calls::BlockSelector;
    let Some(calls) = view_calls(settings, metrics)? else { return Ok(Vec::new()) };
    let catalog = Arc::new(catalog(settings)?);
    let reserved: Vec<&str> = store.projections().tables().iter().map(|t| t.name).collect();
    let mut jobs = Vec::new();
    for (i, s) in settings.snapshots.iter().enumerate() {
        let key = format!("snapshots[{i}]");
        if let Some(keys) = &s.keys {
            let table = store.projections().table(&keys.table).with_context(|| {
                format!(
                    "{key}.keys.table: {:?} is not a projection table (one of {})",
                    keys.table,
                    reserved.join(", ")
                )
            })?;
            if table.column(&keys.column).is_none() {
                let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
                bail!(
                    "{key}.keys.column: table {} has no column {:?} (it has {})",
                    table.name,
                    keys.column,
                    columns.join(", ")
                );
            }
        }
        if reserved.contains(&s.table.as_str()) {
            bail!("{key}.table: {:?} is a projection table; name the snapshot's own table", s.table);
        }
        let spec = SnapshotSpec {
            name: s.name.clone(),
            table: s.table.clone(),
            chain_id: s.chain_id,
            address: s.address,
            function: s.function.clone(),
            args: s.args.clone(),
            keys: s.keys.as_ref().map(|k| (k.table.clone(), k.column.clone())),
            block: match s.block {
                FinalityLevel::Latest => BlockSelector::Latest,
                FinalityLevel::Safe => BlockSelector::Safe,
                FinalityLevel::Finalized => BlockSelector::Finalized,
            },
            batch: s.batch,
            every: match s.every {
                SnapshotSchedule::Blocks(n) => Every::Blocks(n),
                SnapshotSchedule::Interval(d) => Every::Interval(d),
            },
        };
        let job = SnapshotJob::new(spec, catalog.clone(), calls.proxy.clone(), Arc::new(store.clone()))
            .with_context(|| format!("{key}.function"))?;
        jobs.push(job);
    }
    Ok(jobs)
}

/// One refetcher per chain with contracts (`gemgate replay --from-chain`), with the first block any of
/// its contracts starts at.
pub fn refetchers(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Vec<(gemgate_indexer::refetch::Refetch, u64)>> {
    let mut out = Vec::new();
    for chain in &settings.chains {
        let contracts: Vec<_> = settings.contracts.iter().filter(|c| c.chain == chain.id).collect();
        let Some(start) = contracts.iter().map(|c| c.start_block).min() else { continue };
        let refetch = gemgate_indexer::refetch::Refetch {
            chain_id: chain.id,
            source: Arc::new(source(chain, metrics)),
            decoder: Arc::new(decoder(settings, chain.id)?),
            sender_topics: gemgate_projections::gemforce::Gemforce::sender_topics(),
            addresses: contracts.iter().map(|c| c.address).collect(),
            store: Arc::new(store.clone()),
            span: 2_000,
        };
        out.push((refetch, start));
    }
    Ok(out)
}

/// Hybrid reconciliation (`[reconcile]`): the built-in checks of every Diamond (unless `gemforce = false`)
/// and one per `[[snapshots]]` entry with `compare`. `None` without chains or checks.
pub fn reconciler(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Option<gemgate_calls::reconcile::Reconciler>> {
    use gemgate_calls::reconcile::{Check, DriftMetrics, Reconciler};
    let Some(calls) = view_calls(settings, metrics)? else { return Ok(None) };
    let r = &settings.reconcile;
    let mut checks = Vec::new();
    if r.gemforce {
        for c in settings.contracts.iter().filter(|c| c.diamond) {
            checks.extend(Check::gemforce(c.chain, c.address, r.heal));
        }
    }
    for (i, s) in settings.snapshots.iter().enumerate() {
        let (Some(column), Some(keys)) = (&s.compare, &s.keys) else { continue };
        let table = store.projections().table(&keys.table);
        if table.and_then(|t| t.column(column)).is_none() {
            bail!("snapshots[{i}].compare: table {} has no column {column:?}", keys.table);
        }
        checks.push(Check {
            name: format!("snapshot {}", s.name),
            chain_id: s.chain_id,
            address: s.address,
            table: keys.table.clone(),
            argument: keys.column.clone(),
            function: s.function.clone(),
            args: s.args.clone(),
            compare: vec![(String::new(), column.clone())],
            heal: r.heal,
        });
    }
    if checks.is_empty() {
        return Ok(None);
    }
    let reconciler = Reconciler::new(
        checks,
        Arc::new(catalog(settings)?),
        calls.proxy.clone(),
        Arc::new(store.clone()),
        r.batch,
    )
    .map_err(|e| anyhow::anyhow!("reconcile: {e}"))?;
    Ok(Some(reconciler.with_metrics(DriftMetrics::register(metrics))))
}

/// Every configured contract's functions and errors, to encode calls and read reverts.
fn catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::default();
    for contract in &settings.contracts {
        catalog.add(&contract.name, contract.chain, contract.address, &contract_abis(contract)?);
    }
    Ok(catalog)
}

/// The ERC-2771 relayer over the transaction manager (`None` without `[[relayers]]`).
pub fn relayer(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
    txm: Option<&Arc<TxManager>>,
) -> anyhow::Result<Option<Arc<Relayer>>> {
    let (false, Some(txm)) = (settings.relayers.is_empty(), txm) else { return Ok(None) };
    let callers = settings
        .chains
        .iter()
        .map(|chain| (chain.id, Arc::new(tx_rpc(chain, metrics)) as Arc<dyn ViewCaller>))
        .collect();
    let relayer =
        Relayer::new(&settings.relayers, txm.clone(), callers, Arc::new(store.clone()), catalog(settings)?)
            .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some(Arc::new(relayer.with_metrics(RelayMetrics::register(metrics)))))
}

/// One chain's JSON-RPC client for transactions and view calls, its calls counted in `metrics`.
fn tx_rpc(chain: &ChainSettings, metrics: &Metrics) -> TxRpc {
    let urls = chain.rpc.iter().map(|u| (u.expose().clone(), u.redacted())).collect();
    TxRpc::new(chain.id, urls, RetryPolicy::default()).with_metrics(RpcMetrics::register(metrics))
}

pub fn source(chain: &ChainSettings, metrics: &Metrics) -> EvmChain {
    let urls = chain.rpc.iter().map(|u| (u.expose().clone(), u.redacted())).collect();
    EvmChain::new(chain.id, urls, RetryPolicy::default()).with_metrics(RpcMetrics::register(metrics))
}

/// Pushed heads from the chain's `ws` URLs, if it has any.
fn head_notifications(chain: &ChainSettings, metrics: &Metrics) -> Option<tokio::sync::watch::Receiver<u64>> {
    if chain.ws.is_empty() {
        return None;
    }
    let endpoints =
        chain.ws.iter().map(|u| WsEndpoint { url: u.expose().clone(), label: u.redacted() }).collect();
    tracing::info!(chain_id = chain.id, endpoints = chain.ws.len(), "subscribing to websocket heads");
    Some(gemgate_chain::subscribe_heads(chain.id, endpoints, Some(&RpcMetrics::register(metrics))))
}

/// An indexer per configured chain that has contracts.
pub async fn indexers(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Vec<Indexer>> {
    let indexer_metrics = IndexerMetrics::register(metrics);
    let mut indexers = Vec::new();
    for chain in &settings.chains {
        let decoder = decoder(settings, chain.id)?;
        if decoder.addresses().is_empty() {
            tracing::warn!(chain_id = chain.id, "no contracts configured on this chain; not indexing it");
            continue;
        }
        let source = source(chain, metrics);
        let remote = source
            .remote_chain_id()
            .await
            .with_context(|| format!("asking chain {} for its id", chain.id))?;
        if remote != chain.id {
            bail!("chains[{}]: the RPC endpoint serves chain {remote}, not {}", chain.id, chain.id);
        }
        indexer_metrics.start_chain(chain.id);
        check_diamonds(settings, chain.id, store, &source, &indexer_metrics).await?;
        let start_block = settings
            .contracts
            .iter()
            .filter(|c| c.chain == chain.id)
            .map(|c| c.start_block)
            .min()
            .unwrap_or(0);
        let mut indexer_settings = IndexerSettings::new(chain.id, start_block);
        indexer_settings.confirmations = chain.confirmations;
        indexer_settings.poll_interval = chain.poll_interval;
        indexer_settings.sender_topics = gemgate_projections::gemforce::Gemforce::sender_topics();
        let source: Arc<dyn ChainSource> = Arc::new(source);
        let store: Arc<dyn Store> = Arc::new(store.clone());
        let mut indexer =
            Indexer::new(source, store, Arc::new(decoder), indexer_settings, indexer_metrics.clone());
        if let Some(heads) = head_notifications(chain, metrics) {
            indexer = indexer.with_head_notifications(heads);
        }
        indexers.push(indexer);
    }
    Ok(indexers)
}

/// The loupe check at start: each Gemforce Diamond's `facets()` at the block the indexer stands on (the
/// block before its start for a chain never indexed), against the facet table built from `DiamondCut`
/// events. A cut the indexer never saw (made below its start block) is logged, counted in
/// `gemgate_indexer_loupe_repairs_total` and repaired from the loupe with a `facet_history` row (action
/// `loupe`). A node that cannot answer for that block (pruned state) only skips the check, loudly.
async fn check_diamonds(
    settings: &Settings,
    chain_id: u64,
    store: &SqlStore,
    source: &EvmChain,
    metrics: &IndexerMetrics,
) -> anyhow::Result<()> {
    use gemgate_projections::gemforce::{loupe, tables::DIAMOND_FACETS};
    let cursor = Store::cursor(store, chain_id).await.context("reading the chain cursor")?;
    for contract in settings.contracts.iter().filter(|c| c.chain == chain_id && c.diamond && c.gemforce) {
        let block = match cursor {
            Some(cursor) => cursor.number,
            None if contract.start_block > 0 => contract.start_block - 1,
            None => continue,
        };
        let facets = match gemgate_chain::diamond_facets(source, contract.address, Some(block)).await {
            Ok(facets) => facets,
            Err(error) => {
                tracing::warn!(contract = %contract.name, block, %error, "loupe check skipped: facets() unanswered");
                continue;
            }
        };
        let reported: Vec<_> =
            facets.iter().map(|(facet, s)| (*facet, s.iter().map(|s| s.0).collect())).collect();
        let tracked: Vec<(String, String)> = store
            .contract_rows(&DIAMOND_FACETS, chain_id, contract.address)
            .await?
            .into_iter()
            .map(|(_, row)| {
                let text = |c: &str| row.get(c).and_then(|v| v.as_text()).unwrap_or_default().to_string();
                (text("selector"), text("facet"))
            })
            .collect();
        let drift = loupe::facet_drift(&tracked, &reported);
        if drift.is_empty() {
            tracing::info!(contract = %contract.name, block, selectors = tracked.len(), "facets match the Diamond's loupe");
            continue;
        }
        tracing::warn!(
            contract = %contract.name,
            block,
            missing = drift.missing.len(),
            extra = drift.extra.len(),
            "the facet table differs from the Diamond's loupe; repairing it from the loupe"
        );
        let repaired = (drift.missing.len() + drift.extra.len()) as u64;
        metrics.loupe_repairs.get_or_create(&gemgate_indexer::ChainLabel { chain_id }).inc_by(repaired);
        store.write_rows(&loupe::facet_repair(chain_id, contract.address, block, &drift)).await?;
    }
    Ok(())
}

pub fn app_state(
    settings: &Settings,
    store: &SqlStore,
    metrics: Metrics,
    txm: Option<Arc<TxManager>>,
) -> anyhow::Result<AppState> {
    let gemforce = settings
        .contracts
        .iter()
        .filter(|c| c.diamond)
        .map(|c| GemforceContract { chain_id: c.chain, address: c.address })
        .collect();
    let sinks = settings
        .sinks
        .iter()
        .map(|s| SinkInfo {
            name: s.name.clone(),
            kind: s.kind.name().into(),
            finality: s.finality.to_string(),
        })
        .collect();
    Ok(AppState {
        calls: view_calls(settings, &metrics)?,
        relay: relayer(settings, store, &metrics, txm.as_ref())?,
        cluster: None,
        webhooks: gemgate_api::WebhookMetrics::register(&metrics),
        http: gemgate_api::HttpMetrics::register(&metrics),
        store: gemgate_api::StorePorts::of(store),
        metrics,
        settings: Arc::new(settings.api.clone()),
        gemforce: Arc::new(gemforce),
        sinks: Arc::new(sinks),
        txm,
        jwt: settings.api.jwt.clone().map(|jwt| Arc::new(gemgate_api::jwt::JwtVerifier::new(jwt))),
        limits: Arc::new(gemgate_api::limits::RateLimiter::new(settings.api.rate_limits)),
        parse: settings
            .api
            .parse
            .clone()
            .map(|parse| Arc::new(gemgate_api::parse::ParseSessions::new(parse))),
        history: Arc::default(),
    })
}

/// The transaction manager over the configured chains and signers (`None` without chains). Signers are
/// opened here (keystores decrypted, DFNS sessions checked), so a bad key fails at start.
pub async fn tx_manager(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Option<Arc<TxManager>>> {
    if settings.chains.is_empty() {
        return Ok(None);
    }
    let chains = settings
        .chains
        .iter()
        .map(|chain| (chain.id, Arc::new(tx_rpc(chain, metrics)) as Arc<dyn Broadcaster>))
        .collect();
    let signers = gemgate_txm::signers::open(&settings.signers).await.context("opening the signers")?;
    let t = &settings.txm;
    let options = TxmOptions {
        poll_interval: t.poll_interval,
        bump_after: t.bump_after,
        max_bump_after: t.max_bump_after,
        rebroadcast_after: t.rebroadcast_after,
        max_fee_per_gas: t.max_fee_per_gas,
        gas_buffer_percent: t.gas_buffer_percent,
        lease_ttl: t.lease_ttl,
        raw_allow: t
            .raw_allow
            .iter()
            .map(|a| RawAllow { to: a.to, selectors: a.selectors.clone() })
            .collect(),
        raw_max_fee_multiple: u128::from(t.raw_max_fee_multiple),
    };
    let depths = settings.chains.iter().map(|c| (c.id, c.confirmations)).collect();
    let manager = TxManager::new(Arc::new(store.clone()), chains, signers, options)
        .with_confirmations(depths)
        .with_metrics(gemgate_txm::TxmMetrics::register(metrics));
    Ok(Some(Arc::new(manager)))
}

/// This process's name in the leases: `cluster.name`, or host name, process id and a start nonce (so a
/// restarted container with the same host name and process id is still a new holder).
pub fn lease_holder(settings: &Settings) -> String {
    static HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(name) = &settings.cluster.name {
        return name.clone();
    }
    HOLDER
        .get_or_init(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "gemgate".into());
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
            format!("{host}:{}:{:04x}", std::process::id(), nonce & 0xffff)
        })
        .clone()
}

/// A shutdown signal: resolves on Ctrl-C or SIGTERM, or when the sender is dropped or set.
pub fn shutdown_channel() -> (tokio::sync::watch::Sender<bool>, tokio::sync::watch::Receiver<bool>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        let _ = signal_tx.send(true);
    });
    (tx, rx)
}

/// Resolves once shutdown is requested.
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// One dispatcher per configured sink.
pub fn dispatchers(
    settings: &Settings,
    store: &SqlStore,
    metrics: &Metrics,
) -> anyhow::Result<Vec<Dispatcher>> {
    let dispatch_metrics = DispatchMetrics::register(metrics);
    let outbox: Arc<dyn OutboxStore> = Arc::new(store.clone());
    settings
        .sinks
        .iter()
        .map(|sink| {
            let built = gemgate_sinks::build(sink)?;
            let dispatch = DispatchSettings {
                finality: sink.finality,
                events: gemgate_domain::MessageFilter::new(sink.events.clone()),
                max_attempts: sink.max_attempts,
                ..DispatchSettings::new(&sink.name)
            };
            Ok(Dispatcher::new(outbox.clone(), built, dispatch, dispatch_metrics.clone()))
        })
        .collect()
}

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub index: bool,
    pub dispatch: bool,
    pub api: bool,
    /// The transaction workers (signing, broadcast, watching).
    pub txm: bool,
}

impl Parts {
    pub const ALL: Parts = Parts { index: true, dispatch: true, api: true, txm: true };
    pub const NONE: Parts = Parts { index: false, dispatch: false, api: false, txm: false };
}

/// Runs the chosen parts until shutdown. The API binds first, so a taken port fails fast.
pub async fn run_service(
    settings: &Settings,
    store: SqlStore,
    metrics: Metrics,
    parts: Parts,
) -> anyhow::Result<()> {
    let (_keep, rx) = shutdown_channel();
    let indexers = if parts.index { indexers(settings, &store, &metrics).await? } else { Vec::new() };
    let dispatchers = if parts.dispatch { dispatchers(settings, &store, &metrics)? } else { Vec::new() };
    let snapshots = if parts.index { snapshot_jobs(settings, &store, &metrics)? } else { Vec::new() };
    let reconciler = if parts.index { reconciler(settings, &store, &metrics)? } else { None };
    let txm = if parts.api || parts.txm { tx_manager(settings, &store, &metrics).await? } else { None };
    let transacts =
        parts.txm && txm.as_ref().is_some_and(|m| !m.signers.is_empty() || !m.options.raw_allow.is_empty());
    if parts.txm && !parts.index && !transacts {
        bail!("no transactions to manage: configure [[chains]] and [[signers]] (or [[txm.raw_allow]])");
    }
    if parts.index && indexers.is_empty() && dispatchers.is_empty() && !transacts {
        bail!(
            "nothing to index: configure [[chains]] and [[contracts]], or [[signers]] for transactions (`gemgate serve` runs the API alone)"
        );
    }
    if parts.dispatch && !parts.index && dispatchers.is_empty() {
        bail!("nothing to deliver: configure [[sinks]]");
    }
    let mut tasks = tokio::task::JoinSet::new();
    let holder = lease_holder(settings);
    let names: Vec<&str> =
        [("index", parts.index), ("dispatch", parts.dispatch), ("api", parts.api), ("txm", transacts)]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
    let cluster =
        gemgate_cluster::Cluster::new(Arc::new(store.clone()), &holder, &names, settings.cluster.lease_ttl);
    cluster.join().await.context("announcing this process in the leases table")?;
    if store.dialect() == gemgate_store::Dialect::Sqlite {
        tracing::info!(
            holder,
            "SQLite database: one process per database (run several processes on Postgres)"
        );
    } else {
        tracing::info!(holder, ttl = ?settings.cluster.lease_ttl, "joined the cluster: leading or standing by per chain and sink");
    }
    {
        let (heartbeat, rx) = (cluster.clone(), rx.clone());
        tasks.spawn(async move {
            heartbeat.heartbeat(rx).await;
            Ok(())
        });
    }
    if parts.api {
        let listener = tokio::net::TcpListener::bind(settings.api.listen)
            .await
            .with_context(|| format!("binding the API to {}", settings.api.listen))?;
        tracing::info!(listen = %settings.api.listen, "API listening");
        let mut state = app_state(settings, &store, metrics.clone(), txm.clone())?;
        state.cluster = Some(cluster.local());
        let router = gemgate_api::router(state);
        let rx = rx.clone();
        tasks.spawn(async move {
            gemgate_api::serve(listener, router, stopped(rx)).await.context("serving the API")
        });
    }
    if let (false, Some(listen)) = (parts.api, settings.telemetry.listen) {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding telemetry.listen to {listen}"))?;
        tracing::info!(%listen, "serving /health, /ready and /metrics");
        let mut state = app_state(settings, &store, metrics.clone(), txm.clone())?;
        state.cluster = Some(cluster.local());
        let router = gemgate_api::service_router(state);
        let rx = rx.clone();
        tasks.spawn(async move {
            gemgate_api::serve(listener, router, stopped(rx))
                .await
                .context("serving /health, /ready and /metrics")
        });
    }
    if transacts && let Some(manager) = &txm {
        for worker in gemgate_txm::worker::spawn_all(manager, &holder, &rx) {
            tasks.spawn(async move { worker.await.context("transaction worker") });
        }
        tracing::info!(signers = manager.signers.len(), holder, "transaction workers started");
    }
    for mut indexer in indexers {
        let (rx, cluster) = (rx.clone(), cluster.clone());
        tasks.spawn(async move {
            let key = LeaseKey::indexer(indexer.chain_id());
            cluster.lead(key, &mut indexer, rx, None).await.context("indexer")
        });
    }
    for job in snapshots {
        let (rx, cluster) = (rx.clone(), cluster.clone());
        tracing::info!(snapshot = %job.spec().name, table = %job.spec().table, "snapshot schedule started");
        let key = LeaseKey::job(format!("snapshot {}", job.spec().name));
        let job = Arc::new(job);
        let mut part = gemgate_cluster::Job::new(move |stop| {
            let job = job.clone();
            async move { job.run_on_schedule(stop).await }
        });
        tasks.spawn(async move { cluster.lead(key, &mut part, rx, None).await.map_err(anyhow::Error::from) });
    }
    if let Some(reconciler) = reconciler {
        let (rx, cluster) = (rx.clone(), cluster.clone());
        let every = match settings.reconcile.every {
            gemgate_config::SnapshotSchedule::Blocks(n) => gemgate_calls::snapshot::Every::Blocks(n),
            gemgate_config::SnapshotSchedule::Interval(d) => gemgate_calls::snapshot::Every::Interval(d),
        };
        tracing::info!(heal = settings.reconcile.heal, "reconciliation started");
        let reconciler = Arc::new(reconciler);
        let mut part = gemgate_cluster::Job::new(move |stop| {
            let reconciler = reconciler.clone();
            async move { reconciler.run_on_schedule(every, stop).await }
        });
        tasks.spawn(async move {
            cluster.lead(LeaseKey::job("reconcile"), &mut part, rx, None).await.map_err(anyhow::Error::from)
        });
    }
    let share = gemgate_cluster::Share {
        part: "dispatch",
        role: gemgate_domain::cluster::LeaseRole::Sink,
        total: dispatchers.len(),
    };
    for mut dispatcher in dispatchers {
        let (rx, cluster, share) = (rx.clone(), cluster.clone(), share.clone());
        tracing::info!(sink = dispatcher.sink_name(), "dispatcher started");
        tasks.spawn(async move {
            let key = LeaseKey::sink(dispatcher.sink_name());
            cluster.lead(key, &mut dispatcher, rx, Some(share)).await.context("dispatcher")
        });
    }
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(join) => return Err(anyhow::anyhow!("a task panicked: {join}")),
        }
    }
    Ok(())
}
