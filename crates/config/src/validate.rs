//! Turns the file as written (`raw`) into typed `Settings`, collecting every problem with the key it
//! concerns instead of stopping at the first one.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::Address;
use gemgate_domain::{Finality, FinalityLevel};

use crate::Problem;
use crate::raw::{
    OneOrMany, RawApi, RawBatch, RawChain, RawCluster, RawContract, RawJwt, RawParse, RawQuota, RawRate,
    RawReconcile, RawRelayer, RawSettings, RawSigner, RawSink, RawSnapshot,
};
use crate::secret::{Secret, SecretUrl};
use crate::settings::*;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://gemgate.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Used where a node has no `safe`/`finalized` tags; 12 blocks is the common choice on Ethereum L1.
pub const DEFAULT_CONFIRMATIONS: u64 = 12;
/// Anvil and L2s produce blocks every 1-2 s; polling every second keeps latency under a block.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Enough attempts to ride out a broker restart with exponential backoff before dead-lettering.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// Where validation reads secrets and relative paths from.
pub(crate) struct Context<'a> {
    pub base_dir: &'a Path,
    pub env: &'a BTreeMap<String, String>,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { key: key.into(), message: message.into() });
    }
}

pub(crate) fn validate(raw: &RawSettings, ctx: &Context<'_>) -> Result<Settings, Vec<Problem>> {
    let mut p = Problems::default();

    let database = database(raw, &mut p);
    let api = api(&raw.api, ctx, &mut p);
    let telemetry = telemetry(raw, &mut p);
    let txm = txm(raw, &mut p);
    let calls = calls(raw, &mut p);
    let reconcile = reconcile(&raw.reconcile, calls.max_batch, &mut p);
    let cluster = cluster(&raw.cluster, &mut p);

    let mut chain_ids = HashSet::new();
    let chains: Vec<_> = raw
        .chains
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            if !chain_ids.insert(c.id) {
                p.add(format!("chains[{i}].id"), format!("chain {} is configured twice", c.id));
            }
            chain(c, &format!("chains[{i}]"), &mut p)
        })
        .collect();

    let (contracts, contract_names) = named(
        &raw.contracts,
        "contracts",
        |c| &c.name,
        &mut p,
        |c, key, p| contract(c, key, &chain_ids, ctx, p),
    );
    let (sinks, _) =
        named(&raw.sinks, "sinks", |s| &s.name, &mut p, |s, key, p| sink(s, key, &contract_names, ctx, p));
    let (signers, _) =
        named(&raw.signers, "signers", |s| &s.name, &mut p, |s, key, p| signer(s, key, &chain_ids, ctx, p));
    let (relayers, _) = named(
        &raw.relayers,
        "relayers",
        |r| &r.name,
        &mut p,
        |r, key, p| relayer(r, key, &chain_ids, &contracts, &signers, p),
    );
    let (snapshots, _) = named(
        &raw.snapshots,
        "snapshots",
        |s| &s.name,
        &mut p,
        |s, key, p| snapshot(s, key, &contracts, calls.max_batch, p),
    );
    let mut tables = HashSet::new();
    for (i, s) in snapshots.iter().enumerate() {
        if !tables.insert(s.table.as_str()) {
            p.add(format!("snapshots[{i}].table"), format!("table {:?} is used by two snapshots", s.table));
        }
    }

    if !p.0.is_empty() {
        return Err(p.0);
    }
    match (database, api, telemetry, txm) {
        (Some(database), Some(api), Some(telemetry), Some(txm)) => Ok(Settings {
            database,
            api,
            telemetry,
            chains,
            contracts,
            sinks,
            signers,
            txm,
            calls,
            relayers,
            snapshots,
            reconcile,
            cluster,
        }),
        // Every `None` above recorded a problem, so this is unreachable in practice; stay total anyway.
        _ => Err(vec![Problem { key: "(settings)".into(), message: "invalid settings".into() }]),
    }
}

/// Validates a list of named entries (`[[contracts]]`, `[[sinks]]`, ...): each through `check` with its key
/// (`sinks[2]`), and every name unique. Returns the valid entries and the set of names.
fn named<'r, R, T>(
    items: &'r [R],
    section: &str,
    name: impl Fn(&'r R) -> &'r String,
    p: &mut Problems,
    mut check: impl FnMut(&'r R, &str, &mut Problems) -> Option<T>,
) -> (Vec<T>, HashSet<&'r str>) {
    let mut names = HashSet::new();
    let valid = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let key = format!("{section}[{i}]");
            if !names.insert(name(item).as_str()) {
                p.add(format!("{key}.name"), format!("name {:?} is used twice in [[{section}]]", name(item)));
            }
            check(item, &key, p)
        })
        .collect();
    (valid, names)
}

fn database(raw: &RawSettings, p: &mut Problems) -> Option<DatabaseSettings> {
    let text = raw.database.url.as_deref().unwrap_or(DEFAULT_DATABASE_URL);
    let url = parse_url(text, "database.url", &["sqlite", "postgres", "postgresql"], p)?;
    let max_connections = raw.database.max_connections.unwrap_or(10);
    if max_connections == 0 {
        p.add("database.max_connections", "must be at least 1");
    }
    let idle_in_transaction_timeout = match raw.database.idle_in_transaction_timeout.as_deref() {
        None => None,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_millis(100) => Some(d),
            _ => {
                p.add(
                    "database.idle_in_transaction_timeout",
                    format!("{text:?} is not a duration of at least 100ms such as \"3s\""),
                );
                None
            }
        },
    };
    Some(DatabaseSettings { url, max_connections, idle_in_transaction_timeout })
}

fn api(raw: &RawApi, ctx: &Context<'_>, p: &mut Problems) -> Option<ApiSettings> {
    let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: Option<SocketAddr> = match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.add("api.listen", format!("{text:?} is not an address:port such as 127.0.0.1:8080"));
            None
        }
    };
    let keys = raw
        .keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let key = format!("api.keys[{i}]");
            let digest = match hex::decode(k.key_sha256.trim_start_matches("0x")) {
                Ok(bytes) if bytes.len() == 32 => bytes.try_into().ok(),
                _ => {
                    p.add(format!("{key}.key_sha256"), "must be the 64-hex-digit SHA-256 of the key");
                    None
                }
            };
            let scopes = scope_list(&k.scopes, &format!("{key}.scopes"), p);
            if k.scopes.is_empty() {
                p.add(format!("{key}.scopes"), "give at least one scope");
            }
            Some(ApiKey { name: k.name.clone(), key_sha256: digest?, scopes })
        })
        .collect();
    let gemforce_webhook_secret = secret(
        "api.gemforce_webhook_secret",
        &raw.gemforce_webhook_secret_env,
        &raw.gemforce_webhook_secret_file,
        false,
        ctx,
        p,
    );
    let cors = cors(&raw.cors_origins, p);
    let jwt = raw.jwt.as_ref().and_then(|jwt| jwt_settings(jwt, p));
    let limits = &raw.rate_limits;
    let mut rate = |name: &str, raw: &Option<RawRate>| {
        let raw = raw.as_ref()?;
        if !(raw.per_second.is_finite() && raw.per_second > 0.0) {
            p.add(
                format!("api.rate_limits.{name}.per_second"),
                "must be a positive number of requests a second",
            );
            return None;
        }
        if raw.burst == Some(0) {
            p.add(format!("api.rate_limits.{name}.burst"), "must be at least 1");
            return None;
        }
        Some(RateLimit {
            per_second: raw.per_second,
            burst: raw.burst.unwrap_or(raw.per_second.ceil().max(1.0) as u32),
        })
    };
    let rate_limits = RateLimits {
        read: rate("read", &limits.read),
        transact: rate("transact", &limits.transact),
        relay: rate("relay", &limits.relay),
        admin: rate("admin", &limits.admin),
        anonymous: rate("anonymous", &limits.anonymous),
    };
    let parse = raw.parse.as_ref().and_then(|raw| parse_settings(raw, ctx, p));
    let max_body_bytes = raw.max_body_bytes.unwrap_or(1 << 20);
    if !(1024..=64 << 20).contains(&max_body_bytes) {
        p.add("api.max_body_bytes", "must be between 1024 and 67108864 (64 MiB)");
    }
    let listen = listen?;
    let public_reads = raw.public_reads.unwrap_or(listen.ip().is_loopback());
    Some(ApiSettings {
        listen,
        public_reads,
        keys,
        gemforce_webhook_secret,
        cors,
        jwt,
        rate_limits,
        parse,
        max_body_bytes: max_body_bytes as usize,
    })
}

/// Scope names, each known.
fn scope_list(names: &[String], key: &str, p: &mut Problems) -> Vec<Scope> {
    names
        .iter()
        .filter_map(|name| {
            let scope = Scope::parse(name);
            if scope.is_none() {
                p.add(key, format!("unknown scope {name:?}: expected read, transact, relay or admin"));
            }
            scope
        })
        .collect()
}

/// A URL the API calls for credentials: `https://`, or `http://` on a loopback host.
fn credential_url(text: &str, key: &str, p: &mut Problems) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == "https" => Some(url),
        Ok(url) if url.scheme() == "http" && is_loopback_host(&url) => Some(url),
        Ok(_) => {
            p.add(
                key,
                "must be https:// (http:// only on a loopback host): credentials must not be spoofable",
            );
            None
        }
        Err(e) => {
            p.add(key, format!("not a URL: {e}"));
            None
        }
    }
}

/// `[api.parse]`
fn parse_settings(raw: &RawParse, ctx: &Context<'_>, p: &mut Problems) -> Option<ParseSettings> {
    let server_url = credential_url(&raw.server_url, "api.parse.server_url", p);
    if raw.app_id.trim().is_empty() {
        p.add("api.parse.app_id", "must be the Parse app id (X-Parse-Application-Id)");
    }
    let rest_key = secret("api.parse.rest_key", &raw.rest_key_env, &raw.rest_key_file, false, ctx, p);
    let scopes = match &raw.scopes {
        None => vec![Scope::Read],
        Some(names) => scope_list(names, "api.parse.scopes", p),
    };
    let cache_ttl = match raw.cache_ttl.as_deref() {
        None => Some(Duration::from_secs(60)),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => Some(d),
            _ => {
                p.add(
                    "api.parse.cache_ttl",
                    format!("{text:?} is not a duration of at most 1h such as \"60s\""),
                );
                None
            }
        },
    };
    Some(ParseSettings {
        server_url: server_url?,
        app_id: raw.app_id.clone(),
        rest_key,
        scopes,
        cache_ttl: cache_ttl?,
    })
}

/// `[api.jwt]`
fn jwt_settings(raw: &RawJwt, p: &mut Problems) -> Option<JwtSettings> {
    let jwks_url = credential_url(&raw.jwks_url, "api.jwt.jwks_url", p);
    if raw.issuer.trim().is_empty() {
        p.add("api.jwt.issuer", "must name the issuer (the iss claim of its tokens)");
    }
    let audience = match &raw.audience {
        OneOrMany::One(one) => vec![one.clone()],
        OneOrMany::Many(many) => many.clone(),
    };
    if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
        p.add("api.jwt.audience", "give the audience (aud) gemgate's tokens are issued for");
    }
    let algorithms = match &raw.algorithms {
        None => vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256, JwtAlgorithm::EdDSA],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a.as_str() {
                "RS256" => Some(JwtAlgorithm::RS256),
                "ES256" => Some(JwtAlgorithm::ES256),
                "EdDSA" => Some(JwtAlgorithm::EdDSA),
                other => {
                    p.add(
                        format!("api.jwt.algorithms[{i}]"),
                        format!("{other:?} is not one of RS256, ES256, EdDSA"),
                    );
                    None
                }
            })
            .collect(),
    };
    if algorithms.is_empty() {
        p.add("api.jwt.algorithms", "give at least one of RS256, ES256, EdDSA");
    }
    let leeway = match raw.leeway.as_deref() {
        None => Some(Duration::from_secs(30)),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d <= Duration::from_secs(300) => Some(d),
            _ => {
                p.add("api.jwt.leeway", format!("{text:?} is not a duration of at most 5m such as \"30s\""));
                None
            }
        },
    };
    let scopes_claim = raw.scopes_claim.clone().unwrap_or_else(|| "scope".into());
    if scopes_claim.is_empty() {
        p.add("api.jwt.scopes_claim", "must name a claim");
    }
    Some(JwtSettings {
        jwks_url: jwks_url?,
        issuer: raw.issuer.clone(),
        audience,
        scopes_claim,
        algorithms,
        leeway: leeway?,
    })
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `api.cors_origins`: `*`, or origins as browsers send them (`scheme://host[:port]`, no path).
fn cors(origins: &[String], p: &mut Problems) -> CorsSettings {
    let mut cors = CorsSettings::default();
    for (i, origin) in origins.iter().enumerate() {
        if origin == "*" {
            cors.any_origin_reads = true;
            continue;
        }
        let key = format!("api.cors_origins[{i}]");
        match url::Url::parse(origin) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.path() == "/"
                    && url.query().is_none()
                    && !origin.ends_with('/') =>
            {
                // Browsers send the serialized origin: lower-case host, default port left out.
                cors.origins.push(url.origin().ascii_serialization());
            }
            _ => p.add(
                key,
                format!("{origin:?} is not an origin such as \"https://app.example.com\" (scheme, host, optional port, no path) or \"*\""),
            ),
        }
    }
    cors
}

fn telemetry(raw: &RawSettings, p: &mut Problems) -> Option<TelemetrySettings> {
    let log_format = match raw.telemetry.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            p.add("telemetry.log_format", format!("unknown format {other:?}: expected text or json"));
            return None;
        }
    };
    let log_filter =
        raw.telemetry.log_filter.clone().unwrap_or_else(|| crate::settings::DEFAULT_LOG_FILTER.into());
    let listen = match raw.telemetry.listen.as_deref() {
        None => None,
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                p.add(
                    "telemetry.listen",
                    format!("{text:?} is not an address:port such as \"0.0.0.0:9100\""),
                );
                return None;
            }
        },
    };
    Some(TelemetrySettings { log_format, log_filter, listen })
}

fn txm(raw: &RawSettings, p: &mut Problems) -> Option<TxmSettings> {
    let t = &raw.txm;
    let mut ok = true;
    let mut duration = |value: &Option<String>, key: &str, default: Duration| match value.as_deref() {
        None => default,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                p.add(
                    format!("txm.{key}"),
                    format!("{text:?} is not a positive duration such as \"500ms\" or \"30s\""),
                );
                ok = false;
                default
            }
        },
    };
    let poll_interval = duration(&t.poll_interval, "poll_interval", Duration::from_millis(500));
    let bump_after = duration(&t.bump_after, "bump_after", Duration::from_secs(30));
    let max_bump_after = duration(&t.max_bump_after, "max_bump_after", Duration::from_secs(600));
    let rebroadcast_after = duration(&t.rebroadcast_after, "rebroadcast_after", Duration::from_secs(10));
    let lease_ttl = duration(&t.lease_ttl, "lease_ttl", Duration::from_secs(3));
    let max_fee_per_gas = gwei(t.max_fee_gwei, "txm.max_fee_gwei", p).unwrap_or_else(|()| {
        ok = false;
        None
    });
    let mut raw_allow = Vec::new();
    for (i, allow) in t.raw_allow.iter().enumerate() {
        let key = format!("txm.raw_allow[{i}]");
        let to = match allow.to.parse::<Address>() {
            Ok(to) => to,
            Err(_) => {
                p.add(format!("{key}.to"), format!("{:?} is not an address", allow.to));
                ok = false;
                continue;
            }
        };
        let selectors = selectors(&allow.selectors, &format!("{key}.selectors"), p);
        ok &= selectors.len() == allow.selectors.len();
        raw_allow.push(RawAllowSettings { to, selectors });
    }
    ok.then_some(TxmSettings {
        poll_interval,
        bump_after,
        max_bump_after,
        rebroadcast_after,
        lease_ttl,
        max_fee_per_gas,
        gas_buffer_percent: t.gas_buffer_percent.unwrap_or(20),
        raw_max_fee_multiple: t.raw_max_fee_multiple.unwrap_or(10).max(1),
        raw_allow,
    })
}

/// A positive number of gwei as wei; `Err` (recorded) for anything else.
fn gwei(value: Option<f64>, key: &str, p: &mut Problems) -> Result<Option<u128>, ()> {
    match value {
        Some(gwei) if gwei.is_finite() && gwei > 0.0 => Ok(Some((gwei * 1e9).round() as u128)),
        Some(_) => {
            p.add(key, "must be a positive number of gwei");
            Err(())
        }
        None => Ok(None),
    }
}

/// Four-byte selectors from `0x` hex or function signatures (`transfer(address,uint256)`, parameter names
/// allowed); each one that is neither is recorded under `key[i]` and left out.
fn selectors(texts: &[String], key: &str, p: &mut Problems) -> Vec<[u8; 4]> {
    let mut found = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let hex_selector = text
            .strip_prefix("0x")
            .and_then(|digits| hex::decode(digits).ok())
            .and_then(|b| <[u8; 4]>::try_from(b).ok());
        match hex_selector.or_else(|| alloy::json_abi::Function::parse(text).ok().map(|f| f.selector().0)) {
            Some(selector) => found.push(selector),
            None => p.add(
                format!("{key}[{i}]"),
                format!(
                    "{text:?} is neither a 4-byte selector such as \"0xa9059cbb\" nor a function signature such as \"transfer(address,uint256)\""
                ),
            ),
        }
    }
    found
}

/// A wei amount written as a decimal string.
fn wei(text: &Option<String>, key: &str, p: &mut Problems) -> Option<alloy_primitives::U256> {
    let text = text.as_ref()?;
    match alloy_primitives::U256::from_str_radix(text.trim(), 10) {
        Ok(value) => Some(value),
        Err(_) => {
            p.add(key, format!("{text:?} is not a decimal number of wei"));
            None
        }
    }
}

/// `[[relayers]]`: each on a configured chain, paid by a signer on that chain, with an allowlist whose
/// targets are addresses or contract names.
fn relayer(
    r: &RawRelayer,
    key: &str,
    chain_ids: &HashSet<u64>,
    contracts: &[ContractSettings],
    signers: &[SignerSettings],
    p: &mut Problems,
) -> Option<RelayerSettings> {
    let before = p.0.len();
    check_name(&r.name, &format!("{key}.name"), p);
    if !chain_ids.contains(&r.chain) {
        p.add(format!("{key}.chain"), format!("chain {} is not in [[chains]]", r.chain));
    }
    let forwarder = parse_address(&r.forwarder, &format!("{key}.forwarder"), p);
    match signers.iter().find(|s| s.name == r.signer) {
        None => p.add(format!("{key}.signer"), format!("{:?} is not in [[signers]]", r.signer)),
        Some(s) if !s.chains.contains(&r.chain) => p.add(
            format!("{key}.signer"),
            format!("signer {:?} is not allowed on chain {}", r.signer, r.chain),
        ),
        Some(_) => {}
    }
    let max_gas_price = gwei(r.max_gas_price_gwei, &format!("{key}.max_gas_price_gwei"), p).unwrap_or(None);
    let budget_wei = wei(&r.budget_wei, &format!("{key}.budget_wei"), p);
    let max_value_wei = wei(&r.max_value_wei, &format!("{key}.max_value_wei"), p).unwrap_or_default();
    if r.allow.is_empty() {
        p.add(
            format!("{key}.allow"),
            "a relayer relays only what its allowlist names: add [[relayers.allow]] entries (to, functions)",
        );
    }
    let mut allow = Vec::new();
    for (i, entry) in r.allow.iter().enumerate() {
        let entry_key = format!("{key}.allow[{i}]");
        let to = match contracts.iter().find(|c| c.name == entry.to && c.chain == r.chain) {
            Some(contract) => Some(contract.address),
            None => parse_address(&entry.to, &format!("{entry_key}.to"), p),
        };
        let selectors = selectors(&entry.functions, &format!("{entry_key}.functions"), p);
        if let Some(to) = to {
            allow.push(RelayAllowSettings { to, selectors });
        }
    }
    let per_user = quota(r.per_user.as_ref(), &format!("{key}.per_user"), p);
    let per_key = quota(r.per_key.as_ref(), &format!("{key}.per_key"), p);
    let batch = batch(r.batch.as_ref(), &format!("{key}.batch"), p);
    (p.0.len() == before).then(|| RelayerSettings {
        name: r.name.clone(),
        chain_id: r.chain,
        forwarder: forwarder.unwrap_or_default(),
        signer: r.signer.clone(),
        max_gas_price,
        budget_wei,
        max_value_wei,
        allow,
        per_user,
        per_key,
        batch,
    })
}

/// `[[snapshots]]`: of a configured contract, with a schedule, a block level, a batch size within
/// `calls.max_batch` and a table name that is a plain SQL identifier. (The function and the keys' table are
/// checked against the ABIs and the projections when gemgate starts.)
fn snapshot(
    s: &RawSnapshot,
    key: &str,
    contracts: &[ContractSettings],
    max_batch: usize,
    p: &mut Problems,
) -> Option<SnapshotSettings> {
    let before = p.0.len();
    check_name(&s.name, &format!("{key}.name"), p);
    let contract = contracts.iter().find(|c| c.name == s.contract);
    if contract.is_none() {
        p.add(format!("{key}.contract"), format!("{:?} is not in [[contracts]]", s.contract));
    }
    if s.function.trim().is_empty() {
        p.add(format!("{key}.function"), "name a view function of the contract, e.g. \"balanceOf\"");
    }
    let keys = s.keys.as_ref().map(|k| {
        for (field, value) in [("table", &k.table), ("column", &k.column)] {
            if !is_identifier(value) {
                p.add(format!("{key}.keys.{field}"), format!("{value:?} is not a table or column name"));
            }
        }
        SnapshotKeys { table: k.table.clone(), column: k.column.clone() }
    });
    let every = schedule(s.every.as_deref(), &format!("{key}.every"), p);
    let block = match s.block.as_deref().unwrap_or("finalized") {
        "finalized" => FinalityLevel::Finalized,
        "safe" => FinalityLevel::Safe,
        "latest" => FinalityLevel::Latest,
        other => {
            p.add(format!("{key}.block"), format!("{other:?} is not finalized, safe or latest"));
            FinalityLevel::Finalized
        }
    };
    let batch = s.batch.unwrap_or(100.min(max_batch));
    if !(1..=max_batch).contains(&batch) {
        p.add(format!("{key}.batch"), format!("{batch} is not between 1 and calls.max_batch ({max_batch})"));
    }
    let table = s.table.clone().unwrap_or_else(|| format!("snapshot_{}", s.name.replace('-', "_")));
    if !is_identifier(&table) {
        p.add(
            format!("{key}.table"),
            format!("{table:?} must be 1-63 lowercase letters, digits or '_', starting with a letter"),
        );
    }
    if s.compare.is_some() && s.keys.is_none() {
        p.add(
            format!("{key}.compare"),
            "compare needs keys = { table, column }: the rows compared are the keys' rows",
        );
    }
    if let Some(column) = &s.compare
        && !is_identifier(column)
    {
        p.add(format!("{key}.compare"), format!("{column:?} is not a column name"));
    }
    let contract = contract?;
    (p.0.len() == before).then(|| SnapshotSettings {
        name: s.name.clone(),
        contract: contract.name.clone(),
        chain_id: contract.chain,
        address: contract.address,
        function: s.function.clone(),
        args: s.args.clone(),
        keys,
        every,
        block,
        batch,
        table,
        compare: s.compare.clone(),
    })
}

/// `every = "N blocks"` or a duration of at least a second; default 100 blocks.
fn schedule(text: Option<&str>, key: &str, p: &mut Problems) -> SnapshotSchedule {
    let Some(text) = text else { return SnapshotSchedule::Blocks(100) };
    match text.trim().strip_suffix("blocks").or_else(|| text.trim().strip_suffix("block")) {
        Some(n) => match n.trim().parse::<u64>() {
            Ok(n) if n >= 1 => SnapshotSchedule::Blocks(n),
            _ => {
                p.add(key, format!("{text:?}: the number of blocks must be at least 1"));
                SnapshotSchedule::Blocks(100)
            }
        },
        None => match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_secs(1) => SnapshotSchedule::Interval(d),
            _ => {
                p.add(
                    key,
                    format!("{text:?} is not \"N blocks\" or a duration of at least 1s such as \"5m\""),
                );
                SnapshotSchedule::Blocks(100)
            }
        },
    }
}

fn reconcile(raw: &RawReconcile, max_batch: usize, p: &mut Problems) -> ReconcileSettings {
    let batch = raw.batch.unwrap_or(100.min(max_batch));
    if !(1..=max_batch).contains(&batch) {
        p.add("reconcile.batch", format!("{batch} is not between 1 and calls.max_batch ({max_batch})"));
    }
    ReconcileSettings {
        every: schedule(raw.every.as_deref(), "reconcile.every", p),
        heal: raw.heal.unwrap_or(false),
        gemforce: raw.gemforce.unwrap_or(true),
        batch,
    }
}

fn cluster(raw: &RawCluster, p: &mut Problems) -> ClusterSettings {
    let default = Duration::from_secs(3);
    let lease_ttl = match raw.lease_ttl.as_deref() {
        None => default,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if (Duration::from_millis(500)..=Duration::from_secs(300)).contains(&d) => d,
            _ => {
                p.add(
                    "cluster.lease_ttl",
                    format!("{text:?} is not a duration between 500ms and 5m such as \"3s\""),
                );
                default
            }
        },
    };
    let name = raw.name.clone().filter(|n| !n.trim().is_empty());
    if raw.name.is_some() && name.is_none() {
        p.add("cluster.name", "is empty");
    }
    ClusterSettings { lease_ttl, name }
}

/// A plain SQL identifier: safe to put in a statement as it is.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && text.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn batch(raw: Option<&RawBatch>, key: &str, p: &mut Problems) -> BatchSettings {
    let defaults = BatchSettings::default();
    let Some(raw) = raw else { return defaults };
    let max = match raw.max {
        None => defaults.max,
        Some(max) if (1..=100).contains(&max) => max,
        Some(max) => {
            p.add(format!("{key}.max"), format!("{max} is not between 1 and 100"));
            defaults.max
        }
    };
    let wait = match &raw.wait {
        None => defaults.wait,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d <= Duration::from_secs(10) => d,
            _ => {
                p.add(
                    format!("{key}.wait"),
                    format!("{text:?} is not a duration up to 10s such as \"100ms\""),
                );
                defaults.wait
            }
        },
    };
    let refund_receiver = raw
        .refund_receiver
        .as_deref()
        .and_then(|text| parse_address(text, &format!("{key}.refund_receiver"), p));
    BatchSettings { max, wait, refund_receiver }
}

fn quota(raw: Option<&RawQuota>, key: &str, p: &mut Problems) -> QuotaSettings {
    let Some(raw) = raw else {
        return QuotaSettings { window: Duration::from_secs(3600), ..Default::default() };
    };
    let window = match &raw.window {
        None => Duration::from_secs(3600),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d.as_secs() >= 1 => d,
            _ => {
                p.add(
                    format!("{key}.window"),
                    format!("{text:?} is not a duration of a second or more such as \"1h\""),
                );
                Duration::from_secs(3600)
            }
        },
    };
    QuotaSettings {
        requests: raw.requests,
        window,
        gas_per_day: raw.gas_per_day,
        wei_per_day: wei(&raw.wei_per_day, &format!("{key}.wei_per_day"), p),
    }
}

/// Multicall3's address on most EVM chains.
pub const MULTICALL3: Address = alloy_primitives::address!("cA11bde05977b3631167028862bE2a173976CA11");

fn calls(raw: &RawSettings, p: &mut Problems) -> CallsSettings {
    let c = &raw.calls;
    let cache_mib = c.cache_mib.unwrap_or(32);
    if cache_mib > 64 * 1024 {
        p.add("calls.cache_mib", "at most 65536 (64 GiB)");
    }
    let max_batch = c.max_batch.unwrap_or(100);
    if !(1..=1000).contains(&max_batch) {
        p.add("calls.max_batch", "must be between 1 and 1000");
    }
    let head_max_age = match c.head_max_age.as_deref() {
        None => Duration::from_millis(250),
        Some(text) => humantime::parse_duration(text).unwrap_or_else(|_| {
            p.add(
                "calls.head_max_age",
                format!(
                    "{text:?} is not a duration such as \"250ms\" (\"0s\": read the head for every call)"
                ),
            );
            Duration::ZERO
        }),
    };
    CallsSettings { cache_bytes: cache_mib * 1024 * 1024, max_batch, head_max_age }
}

fn chain(raw: &RawChain, key: &str, p: &mut Problems) -> Option<ChainSettings> {
    if raw.id == 0 {
        p.add(format!("{key}.id"), "chain id 0 is not a valid EIP-155 chain id");
    }
    if raw.rpc.is_empty() {
        p.add(format!("{key}.rpc"), "give at least one RPC URL");
    }
    let rpc: Vec<_> = raw
        .rpc
        .iter()
        .enumerate()
        .filter_map(|(i, u)| parse_url(u, &format!("{key}.rpc[{i}]"), &["http", "https"], p))
        .collect();
    let ws = match &raw.ws {
        None => Vec::new(),
        Some(OneOrMany::One(url)) => {
            parse_url(url, &format!("{key}.ws"), &["ws", "wss"], p).into_iter().collect()
        }
        Some(OneOrMany::Many(urls)) => urls
            .iter()
            .enumerate()
            .filter_map(|(i, u)| parse_url(u, &format!("{key}.ws[{i}]"), &["ws", "wss"], p))
            .collect(),
    };
    let poll_interval = match raw.poll_interval.as_deref() {
        None => DEFAULT_POLL_INTERVAL,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                p.add(
                    format!("{key}.poll_interval"),
                    format!("{text:?} is not a duration such as \"500ms\" or \"2s\""),
                );
                DEFAULT_POLL_INTERVAL
            }
        },
    };
    Some(ChainSettings {
        id: raw.id,
        name: raw.name.clone().unwrap_or_else(|| format!("chain-{}", raw.id)),
        rpc,
        ws,
        confirmations: raw.confirmations.unwrap_or(DEFAULT_CONFIRMATIONS),
        poll_interval,
        multicall3: match raw.multicall3.as_deref() {
            None => Some(MULTICALL3),
            Some("none") => None,
            Some(text) => text.parse().map(Some).unwrap_or_else(|_| {
                p.add(format!("{key}.multicall3"), format!("{text:?} is neither an address nor \"none\""));
                None
            }),
        },
    })
}

fn contract(
    raw: &RawContract,
    key: &str,
    chains: &HashSet<u64>,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Option<ContractSettings> {
    check_name(&raw.name, &format!("{key}.name"), p);
    if RESERVED_CONTRACT_NAMES.contains(&raw.name.as_str()) {
        p.add(format!("{key}.name"), format!("{:?} is reserved for message kinds in sinks.events", raw.name));
    }
    if !chains.contains(&raw.chain) {
        p.add(format!("{key}.chain"), format!("chain {} is not configured in [[chains]]", raw.chain));
    }
    let address = parse_address(&raw.address, &format!("{key}.address"), p);
    let gemforce = raw.gemforce.unwrap_or(raw.diamond);
    if raw.abi.is_empty() && !gemforce {
        p.add(
            format!("{key}.abi"),
            "give at least one ABI file, or set diamond = true (or gemforce = true) for the built-in Gemforce ABIs",
        );
    }
    let abi: Vec<PathBuf> = raw
        .abi
        .iter()
        .enumerate()
        .filter_map(|(i, file)| {
            let path = ctx.base_dir.join(file);
            let abi_key = format!("{key}.abi[{i}]");
            match std::fs::read_to_string(&path) {
                Err(e) => {
                    p.add(abi_key, format!("cannot read ABI file {}: {e}", path.display()));
                    None
                }
                Ok(text) => match crate::abi::parse_abi(&text) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        p.add(abi_key, format!("{} is not a JSON ABI: {e}", path.display()));
                        None
                    }
                },
            }
        })
        .collect();
    Some(ContractSettings {
        name: raw.name.clone(),
        chain: raw.chain,
        address: address?,
        abi,
        diamond: raw.diamond,
        gemforce,
        start_block: raw.start_block.unwrap_or(0),
    })
}

fn sink(
    raw: &RawSink,
    key: &str,
    contracts: &HashSet<&str>,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Option<SinkSettings> {
    check_name(&raw.name, &format!("{key}.name"), p);
    let finality = match &raw.finality {
        None => Some(Finality::Latest),
        Some(value) => parse_finality(value, &format!("{key}.finality"), p),
    };
    let events = raw.events.clone().unwrap_or_default();
    for (i, e) in events.iter().enumerate() {
        if let Err(problem) = message_pattern(e, contracts) {
            p.add(format!("{key}.events[{i}]"), problem);
        }
    }
    let required = |name: &str, value: &Option<String>, p: &mut Problems| -> Option<String> {
        match value {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ => {
                p.add(format!("{key}.{name}"), format!("required for kind = {:?}", raw.kind));
                None
            }
        }
    };
    let url = |schemes: &[&str], p: &mut Problems| -> Option<SecretUrl> {
        let text = required("url", &raw.url, p)?;
        parse_url(&text, &format!("{key}.url"), schemes, p)
    };
    let kind = match raw.kind.as_str() {
        "amqp" => Some(SinkKind::Amqp {
            url: url(&["amqp", "amqps"], p)?,
            exchange: raw.exchange.clone().unwrap_or_else(|| "gemgate".into()),
            queue: raw.queue.clone(),
        }),
        "kafka" => {
            if raw.brokers.is_empty() {
                p.add(format!("{key}.brokers"), "required for kind = \"kafka\": a list of host:port");
            }
            Some(SinkKind::Kafka { brokers: raw.brokers.clone(), topic: required("topic", &raw.topic, p)? })
        }
        "nats" => Some(SinkKind::Nats {
            url: url(&["nats", "tls"], p)?,
            subject: required("subject", &raw.subject, p)?,
            stream: raw.stream.clone().unwrap_or_else(|| "GEMGATE".into()),
        }),
        "redis" => Some(SinkKind::Redis {
            url: url(&["redis", "rediss"], p)?,
            stream: required("stream", &raw.stream, p)?,
            maxlen: raw.maxlen,
        }),
        "webhook" => {
            let current = secret(&format!("{key}.secret"), &raw.secret_env, &raw.secret_file, true, ctx, p);
            let previous = secret(
                &format!("{key}.previous_secret"),
                &raw.previous_secret_env,
                &raw.previous_secret_file,
                false,
                ctx,
                p,
            );
            let signature = match raw.signature.as_deref() {
                None | Some("standard") => WebhookSignature::Standard,
                Some("gemgate") => WebhookSignature::Gemgate,
                Some(other) => {
                    p.add(
                        format!("{key}.signature"),
                        format!("unknown signature scheme {other:?}: expected \"standard\" or \"gemgate\""),
                    );
                    WebhookSignature::Standard
                }
            };
            let url = url(&["http", "https"], p)?;
            if signature == WebhookSignature::Standard {
                let given = [("secret", &current), ("previous_secret", &previous)];
                for (which, secret) in given.iter().filter_map(|(w, s)| Some((w, s.as_ref()?))) {
                    if let Err(problem) = gemgate_domain::signature::standard_key(secret.expose()) {
                        p.add(
                            format!("{key}.{which}"),
                            format!(
                                "{problem}: Standard Webhooks secrets are whsec_ and the base64 of 24 to 64 \
                                 random bytes (make one with: echo \"whsec_$(openssl rand -base64 32)\"); \
                                 signature = \"gemgate\" takes any secret"
                            ),
                        );
                    }
                }
            }
            let secrets = current.into_iter().chain(previous).collect();
            Some(SinkKind::Webhook {
                url,
                secrets,
                strict_order: raw.strict_order.unwrap_or(false),
                signature,
            })
        }
        other => {
            p.add(
                format!("{key}.kind"),
                format!("unknown sink kind {other:?}: expected amqp, kafka, nats, redis or webhook"),
            );
            None
        }
    };
    let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if max_attempts == 0 {
        p.add(format!("{key}.max_attempts"), "must be at least 1");
    }
    let format = message_format(raw, key, p);
    if format == MessageFormat::CloudeventsBinary && raw.kind == "redis" {
        p.add(
            format!("{key}.content_mode"),
            "Redis Streams has no CloudEvents binding with headers: use content_mode = \"structured\"",
        );
    }
    Some(SinkSettings {
        name: raw.name.clone(),
        kind: kind?,
        finality: finality?,
        events,
        max_attempts,
        format,
    })
}

/// `format` and `content_mode` of a sink.
fn message_format(raw: &RawSink, key: &str, p: &mut Problems) -> MessageFormat {
    let binary = match raw.content_mode.as_deref() {
        None | Some("structured") => false,
        Some("binary") => true,
        Some(other) => {
            p.add(
                format!("{key}.content_mode"),
                format!("unknown content mode {other:?}: expected \"structured\" or \"binary\""),
            );
            false
        }
    };
    match raw.format.as_deref() {
        None | Some("envelope") => {
            if raw.content_mode.is_some() {
                p.add(format!("{key}.content_mode"), "applies to format = \"cloudevents\" only");
            }
            MessageFormat::Envelope
        }
        Some("cloudevents") if binary => MessageFormat::CloudeventsBinary,
        Some("cloudevents") => MessageFormat::CloudeventsStructured,
        Some(other) => {
            p.add(
                format!("{key}.format"),
                format!("unknown format {other:?}: expected \"envelope\" or \"cloudevents\""),
            );
            MessageFormat::Envelope
        }
    }
}

fn signer(
    raw: &RawSigner,
    key: &str,
    chains: &HashSet<u64>,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Option<SignerSettings> {
    check_name(&raw.name, &format!("{key}.name"), p);
    for (i, chain) in raw.chains.iter().enumerate() {
        if !chains.contains(chain) {
            p.add(format!("{key}.chains[{i}]"), format!("chain {chain} is not configured in [[chains]]"));
        }
    }
    let kind = match raw.kind.as_str() {
        "local" => {
            let key_text = secret(&format!("{key}.key"), &raw.key_env, &raw.key_file, true, ctx, p)?;
            let hex_key = key_text.expose().trim().trim_start_matches("0x");
            if hex_key.len() != 64 || hex::decode(hex_key).is_err() {
                // Never echo the value: it is (or was meant to be) a private key.
                p.add(format!("{key}.key"), "the key must be 32 bytes of hex (64 hex digits, optional 0x)");
                return None;
            }
            Some(SignerKind::Local { key: key_text })
        }
        "keystore" => {
            let path = match &raw.path {
                Some(path) => ctx.base_dir.join(path),
                None => {
                    p.add(format!("{key}.path"), "required for kind = \"keystore\"");
                    return None;
                }
            };
            if !path.is_file() {
                p.add(format!("{key}.path"), format!("keystore file {} does not exist", path.display()));
            }
            let password =
                secret(&format!("{key}.password"), &raw.password_env, &raw.password_file, true, ctx, p)?;
            Some(SignerKind::Keystore { path, password })
        }
        "dfns" => {
            let field = |name: &str, value: &Option<String>, p: &mut Problems| match value {
                Some(v) if !v.is_empty() => Some(v.clone()),
                _ => {
                    p.add(format!("{key}.{name}"), "required for kind = \"dfns\"");
                    None
                }
            };
            let base_url = field("base_url", &raw.base_url, p)
                .and_then(|u| parse_url(&u, &format!("{key}.base_url"), &["http", "https"], p));
            let app_id = field("app_id", &raw.app_id, p);
            let wallet_id = field("wallet_id", &raw.wallet_id, p);
            let credential_id = field("credential_id", &raw.credential_id, p);
            let token = secret(&format!("{key}.token"), &raw.token_env, &raw.token_file, true, ctx, p);
            let private_key = secret(
                &format!("{key}.private_key"),
                &raw.private_key_env,
                &raw.private_key_file,
                true,
                ctx,
                p,
            );
            Some(SignerKind::Dfns {
                base_url: base_url?,
                app_id: app_id?,
                wallet_id: wallet_id?,
                token: token?,
                credential_id: credential_id?,
                private_key: private_key?,
            })
        }
        "aws-kms" => {
            let key_id = match &raw.key_id {
                Some(key_id) if !key_id.trim().is_empty() => Some(key_id.trim().to_string()),
                _ => {
                    p.add(format!("{key}.key_id"), "required for kind = \"aws-kms\"");
                    None
                }
            };
            let region = raw.region.as_ref().filter(|region| {
                let valid = !region.is_empty()
                    && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !valid {
                    p.add(
                        format!("{key}.region"),
                        format!("{region:?} is not an AWS region (such as eu-west-1)"),
                    );
                }
                valid
            });
            let endpoint = match &raw.endpoint {
                Some(url) => Some(parse_url(url, &format!("{key}.endpoint"), &["http", "https"], p)?),
                None => None,
            };
            Some(SignerKind::AwsKms { key_id: key_id?, region: region.cloned(), endpoint })
        }
        other => {
            p.add(
                format!("{key}.kind"),
                format!("unknown signer kind {other:?}: expected local, keystore, dfns or aws-kms"),
            );
            None
        }
    };
    Some(SignerSettings { name: raw.name.clone(), chains: raw.chains.clone(), kind: kind? })
}

/// Reads a secret from exactly one of `<name>_env` (an environment variable) or `<name>_file`.
fn secret(
    key: &str,
    env_var: &Option<String>,
    file: &Option<String>,
    required: bool,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Option<Secret<String>> {
    match (env_var, file) {
        (Some(_), Some(_)) => {
            p.add(format!("{key}_env"), format!("give either {key}_env or {key}_file, not both"));
            None
        }
        (Some(var), None) => match ctx.env.get(var) {
            Some(value) if !value.trim().is_empty() => Some(Secret::new(value.trim().to_string())),
            _ => {
                p.add(format!("{key}_env"), format!("environment variable {var} is not set"));
                None
            }
        },
        (None, Some(file)) => {
            let path = ctx.base_dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(value) if !value.trim().is_empty() => Some(Secret::new(value.trim().to_string())),
                Ok(_) => {
                    p.add(format!("{key}_file"), format!("{} is empty", path.display()));
                    None
                }
                Err(e) => {
                    p.add(format!("{key}_file"), format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        (None, None) => {
            if required {
                p.add(format!("{key}_env"), format!("give {key}_env or {key}_file"));
            }
            None
        }
    }
}

fn parse_url(text: &str, key: &str, schemes: &[&str], p: &mut Problems) -> Option<SecretUrl> {
    match url::Url::parse(text) {
        Ok(url) if schemes.contains(&url.scheme()) => Some(SecretUrl::new(url)),
        Ok(url) => {
            p.add(key, format!("scheme {:?} is not one of {}", url.scheme(), schemes.join(", ")));
            None
        }
        // The URL may hold credentials, so the error names the key, not the value.
        Err(e) => {
            p.add(key, format!("not a valid URL: {e}"));
            None
        }
    }
}

fn parse_address(text: &str, key: &str, p: &mut Problems) -> Option<Address> {
    let valid_shape = text.len() == 42 && text.starts_with("0x");
    match text.parse::<Address>() {
        Ok(address) if valid_shape => Some(address),
        _ => {
            p.add(key, format!("{text:?} is not an address (0x followed by 40 hex digits)"));
            None
        }
    }
}

fn parse_finality(value: &toml::Value, key: &str, p: &mut Problems) -> Option<Finality> {
    match value {
        toml::Value::String(s) => match s.parse() {
            Ok(f) => Some(f),
            Err(e) => {
                p.add(key, e);
                None
            }
        },
        toml::Value::Table(t) => match t.get("confirmations").and_then(toml::Value::as_integer) {
            Some(n) if n >= 0 && t.len() == 1 => Some(Finality::Confirmations(n as u64)),
            _ => {
                p.add(key, "expected { confirmations = N } with N >= 0");
                None
            }
        },
        _ => {
            p.add(key, "expected \"latest\", \"safe\", \"finalized\" or { confirmations = N }");
            None
        }
    }
}

/// Names appear in routing keys, metrics labels and URLs: keep them to a safe alphabet.
/// Message kinds that are not chain events, by family: what `sinks.events` may name besides
/// `contract.Event`.
const WEBHOOK_SOURCES: [&str; 1] = ["gemforce"];

/// Checks one `sinks.events` entry: `contract.Event` or `contract.*` of a configured contract,
/// `transaction.<state>` or `transaction.*`, `webhook.gemforce` or `webhook.*`.
fn message_pattern(pattern: &str, contracts: &HashSet<&str>) -> Result<(), String> {
    let Some((family, name)) = pattern.split_once('.').filter(|(f, n)| !f.is_empty() && !n.is_empty()) else {
        return Err(format!(
            "{pattern:?} is not of the form contract.Event, contract.*, transaction.<state>, transaction.*, webhook.gemforce or drift.detected"
        ));
    };
    match family {
        "transaction" if name == "*" || gemgate_domain::TxState::parse(name).is_some() => Ok(()),
        "transaction" => Err(format!(
            "{name:?} is not a transaction state (one of {}, or *)",
            gemgate_domain::TxState::ALL.map(|s| s.as_str()).join(", ")
        )),
        "drift" if name == "*" || name == "detected" => Ok(()),
        "drift" => Err(format!("{name:?}: reconciliation sends drift.detected (or name drift.*)")),
        "webhook" if name == "*" || WEBHOOK_SOURCES.contains(&name) => Ok(()),
        "webhook" => Err(format!("{name:?} is not a webhook source (gemforce, or *)")),
        contract if !contracts.contains(contract) => Err(format!("contract {contract:?} is not configured")),
        _ => Ok(()),
    }
}

/// Contract names that would make `sinks.events` patterns ambiguous.
const RESERVED_CONTRACT_NAMES: [&str; 3] = ["transaction", "webhook", "drift"];

fn check_name(name: &str, key: &str, p: &mut Problems) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        p.add(key, format!("{name:?} must be 1-64 characters of letters, digits, '-' or '_'"));
    }
}
