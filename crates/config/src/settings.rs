//! The validated settings tree. Every value here has been checked: addresses parse, URLs have the right
//! scheme, referenced chains exist, ABI files load, secrets were found. Components receive the part they
//! need from the binary; nothing else reads configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::Address;
use gemgate_domain::{ChainId, Finality, FinalityLevel};

/// The log filter when neither `--log-filter` nor `telemetry.log_filter` sets one: everything at info, except
/// the database driver's notices ("... does not exist, skipping"), which are noise to an operator.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";
use serde::Serialize;

use crate::secret::{Secret, SecretUrl};

/// The whole configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub api: ApiSettings,
    pub telemetry: TelemetrySettings,
    pub chains: Vec<ChainSettings>,
    pub contracts: Vec<ContractSettings>,
    pub sinks: Vec<SinkSettings>,
    pub signers: Vec<SignerSettings>,
    pub txm: TxmSettings,
    pub calls: CallsSettings,
    pub relayers: Vec<RelayerSettings>,
    pub snapshots: Vec<SnapshotSettings>,
    pub reconcile: ReconcileSettings,
    pub cluster: ClusterSettings,
}

/// `[cluster]`: several processes on one database. Each chain's indexer and each sink's dispatcher is led
/// by one process at a time through a lease; the others stand by and take over when it expires.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSettings {
    /// A lease lasts this long without renewal (renewed four times as often); a standby takes over within
    /// about this long after its leader died. Default 3s.
    pub lease_ttl: Duration,
    /// This process's name in the leases (default: host name, process id and a start nonce).
    pub name: Option<String>,
}

/// `[reconcile]`: hybrid reconciliation of projections against the contracts' views at the finalized block.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileSettings {
    /// How often a round runs. Default `100 blocks`.
    pub every: SnapshotSchedule,
    /// Correct drifted projection values from the view (default false: record and report only).
    pub heal: bool,
    /// The built-in checks of every `diamond = true` contract (default true).
    pub gemforce: bool,
    /// Rows compared per Multicall3 batch (at most `calls.max_batch`). Default 100.
    pub batch: usize,
}

/// `[[snapshots]]`: a view function of a configured contract read for a set of arguments at one pinned
/// block, on a schedule, into a table of its own (`gemgate snapshot run NAME` runs one now).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSettings {
    pub name: String,
    /// The `[[contracts]]` entry whose ABI and address the calls use.
    pub contract: String,
    pub chain_id: ChainId,
    pub address: Address,
    /// A function name from the contract's ABI, or a signature.
    pub function: String,
    /// The call's arguments; with `keys`, an argument `"{key}"` is each key (default: the key alone).
    pub args: Vec<serde_json::Value>,
    /// `keys = { table, column }`: one call per distinct value of a projection table's column.
    pub keys: Option<SnapshotKeys>,
    pub every: SnapshotSchedule,
    /// The block every call of a run is pinned to: `finalized` (default), `safe` or `latest`.
    pub block: FinalityLevel,
    /// Calls per Multicall3 batch (at most `calls.max_batch`). Default 100.
    pub batch: usize,
    /// The table the rows go to. Default `snapshot_<name>` (`-` becomes `_`).
    pub table: String,
    /// A column of the keys' table the view's (only) output is compared with by reconciliation.
    pub compare: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotKeys {
    pub table: String,
    pub column: String,
}

/// `every = "100 blocks"` (of the chosen block level) or `every = "5m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SnapshotSchedule {
    Blocks(u64),
    Interval(#[serde(with = "humantime_serde_text")] Duration),
}

mod humantime_serde_text {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// `[[relayers]]`: an ERC-2771 relayer (`POST /v1/relay`): users sign requests for `forwarder`, and
/// `signer` pays for the transactions that carry them, within the allowlist and the quotas.
#[derive(Debug, Clone, Serialize)]
pub struct RelayerSettings {
    pub name: String,
    pub chain_id: ChainId,
    /// The `ERC2771Forwarder` users sign for (its EIP-712 domain is read from `eip712Domain()`).
    pub forwarder: Address,
    /// A `[[signers]]` name on `chain`: it sends and pays.
    pub signer: String,
    /// `max_gas_price_gwei`: no relaying while the fee cap needed is above this (wei per gas).
    pub max_gas_price: Option<u128>,
    /// `budget_wei`: the sponsor's budget over the relayer's lifetime (gas at the fee cap plus value); no
    /// relaying once it is spent.
    pub budget_wei: Option<alloy_primitives::U256>,
    /// `max_value_wei`: the most ether (wei) a request may have the relayer send along; default 0, so a
    /// user cannot spend the sponsor's ether through a payable target.
    pub max_value_wei: alloy_primitives::U256,
    /// `[[relayers.allow]]`: the targets and functions requests may call; nothing else is relayed.
    pub allow: Vec<RelayAllowSettings>,
    /// `[relayers.per_user]`: limits per signing user (`from`).
    pub per_user: QuotaSettings,
    /// `[relayers.per_key]`: limits per API key.
    pub per_key: QuotaSettings,
    /// `[relayers.batch]`: requests waiting together go in one `executeBatch`.
    pub batch: BatchSettings,
}

/// `[relayers.batch]`: `max` requests (default 1: no batching, each request its own `execute`) gathered for
/// up to `wait` (default 100ms) go in one `executeBatch` with `refund_receiver` (default the paying signer),
/// so a member that fails on chain is skipped and does not sink the others.
#[derive(Debug, Clone, Serialize)]
pub struct BatchSettings {
    pub max: usize,
    #[serde(with = "duration_text")]
    pub wait: Duration,
    pub refund_receiver: Option<Address>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max: 1, wait: Duration::from_millis(100), refund_receiver: None }
    }
}

/// `[[relayers.allow]]`: `to` (an address or a `[[contracts]]` name) and `functions` (signatures or `0x`
/// selectors; empty = any function of `to`).
#[derive(Debug, Clone, Serialize)]
pub struct RelayAllowSettings {
    pub to: Address,
    #[serde(serialize_with = "selectors_text")]
    pub selectors: Vec<[u8; 4]>,
}

/// A relayer's limits for one subject (a user or an API key); `None` is unlimited.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotaSettings {
    /// `requests` per `window` (fixed windows aligned to the Unix epoch; default window 1h).
    pub requests: Option<u64>,
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// `gas_per_day`: the gas limits of the subject's requests per UTC day.
    pub gas_per_day: Option<u64>,
    /// `wei_per_day`: what relaying the subject's requests may cost per UTC day (gas at the fee cap plus
    /// value), wei.
    pub wei_per_day: Option<alloy_primitives::U256>,
}

/// `[calls]`: the view-call proxy (`POST /v1/call`, `gemgate call`).
#[derive(Debug, Clone, Serialize)]
pub struct CallsSettings {
    /// `calls.cache_mib`: memory for cached call results (pinned blocks, `safe`, `finalized`, and `latest`
    /// for the current head), least recently used evicted first. 0 turns the cache off. Default 32.
    pub cache_bytes: u64,
    /// `calls.max_batch`: the most calls one request may batch. Default 100.
    pub max_batch: usize,
    /// `calls.head_max_age`: how long the `latest` block, once read, names the head for later calls. Default
    /// 250ms: concurrent `latest` calls share one head lookup, and an answer is at most this old.
    #[serde(with = "duration_text")]
    pub head_max_age: Duration,
}

/// `[txm]`: the transaction manager.
#[derive(Debug, Clone, Serialize)]
pub struct TxmSettings {
    /// `txm.poll_interval`: how often an idle worker reads its ledger. Default 500ms.
    #[serde(with = "duration_text")]
    pub poll_interval: Duration,
    /// `txm.bump_after`: the first wait before a pending transaction is re-priced; it doubles with each
    /// re-pricing up to `txm.max_bump_after`. Defaults 30s and 10m.
    #[serde(with = "duration_text")]
    pub bump_after: Duration,
    #[serde(with = "duration_text")]
    pub max_bump_after: Duration,
    /// `txm.rebroadcast_after`: how long after a broadcast a pending transaction is sent again (a node
    /// that dropped it takes it back; one that has it answers "already known"). Default 10s.
    #[serde(with = "duration_text")]
    pub rebroadcast_after: Duration,
    /// `txm.lease_ttl`: a worker's lease on a signer lasts this long without renewal (renewed every pass); a
    /// standby process takes the signer over within about this long after its worker stopped. Default 3s.
    #[serde(with = "duration_text")]
    pub lease_ttl: Duration,
    /// `txm.max_fee_gwei`: the most a new transaction may pay per gas; replacements are never capped.
    pub max_fee_per_gas: Option<u128>,
    /// `txm.gas_buffer_percent`: added to gas estimates. Default 20 (Gemforce's guidance).
    pub gas_buffer_percent: u64,
    /// `txm.raw_max_fee_multiple`: a client-signed transaction may pay at most this many times the
    /// market's fee cap. Default 10.
    pub raw_max_fee_multiple: u64,
    /// `[[txm.raw_allow]]`: what client-signed transactions may call (`to`, and `selectors`, empty = any).
    pub raw_allow: Vec<RawAllowSettings>,
}

/// `[[txm.raw_allow]]`
#[derive(Debug, Clone, Serialize)]
pub struct RawAllowSettings {
    pub to: Address,
    /// Four-byte function selectors, `0x` hex.
    #[serde(serialize_with = "selectors_text")]
    pub selectors: Vec<[u8; 4]>,
}

fn selectors_text<S: serde::Serializer>(selectors: &[[u8; 4]], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(selectors.iter().map(|sel| format!("0x{}", hex::encode(sel))))
}

/// `[database]`
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSettings {
    /// `database.url` (`GEMGATE__DATABASE__URL`), default `sqlite://gemgate.db`.
    pub url: SecretUrl,
    /// `database.max_connections`, default 10.
    pub max_connections: u32,
    /// `database.idle_in_transaction_timeout` (Postgres): the server ends a session idle inside a
    /// transaction this long, releasing its locks. Default: `cluster.lease_ttl`.
    pub idle_in_transaction_timeout: Option<Duration>,
}

impl DatabaseSettings {
    pub fn backend(&self) -> DatabaseBackend {
        match self.url.scheme() {
            "postgres" | "postgresql" => DatabaseBackend::Postgres,
            _ => DatabaseBackend::Sqlite,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

/// `[api]`
#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    /// `api.listen`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `api.public_reads`: reads without a key. Default: true only when `listen` is a loopback address.
    pub public_reads: bool,
    /// `[[api.keys]]`
    pub keys: Vec<ApiKey>,
    /// `api.gemforce_webhook_secret_env` / `_file`: the shared secret of `POST /v1/webhooks/gemforce`
    /// (the endpoint answers 404 without it).
    pub gemforce_webhook_secret: Option<Secret<String>>,
    /// `api.cors_origins`: browser origins allowed to call the API. Default: none (no CORS headers).
    pub cors: CorsSettings,
    /// `[api.jwt]`: bearer JWTs from an identity provider, beside the API keys. Default: none.
    pub jwt: Option<JwtSettings>,
    /// `[api.rate_limits]`: token buckets per caller and endpoint group. Default: no limits.
    pub rate_limits: RateLimits,
    /// `[api.parse]`: Parse Server sessions (`X-Parse-Session-Token`). Default: none.
    pub parse: Option<ParseSettings>,
    /// `api.max_body_bytes`: the largest request body taken (413 `payload_too_large` beyond). Default 1 MiB.
    pub max_body_bytes: usize,
}

/// `[api.parse]`: the Parse Server whose sessions the API accepts.
#[derive(Debug, Clone, Serialize)]
pub struct ParseSettings {
    /// `server_url`: the Parse Server's mount (`https://backend.example/parse`; `http://` only on a
    /// loopback host); sessions are checked with `GET <server_url>/users/me`.
    pub server_url: url::Url,
    /// `app_id`: sent as `X-Parse-Application-Id`.
    pub app_id: String,
    /// `rest_key_env` / `rest_key_file`: sent as `X-Parse-REST-API-Key` when the server requires it.
    pub rest_key: Option<Secret<String>>,
    /// `scopes`: what every valid session may do. Default `["read"]`. (Not a field of the user: Parse
    /// users may write their own fields.)
    pub scopes: Vec<Scope>,
    /// `cache_ttl`: how long a checked session is trusted before it is checked again. Default 60s.
    #[serde(with = "humantime_serde_text")]
    pub cache_ttl: std::time::Duration,
}

/// `[api.rate_limits]`: one token bucket per caller (API key name, `jwt:<subject>`; the client address for
/// `anonymous`) and group. Each group is unlimited unless configured. Buckets live in each process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateLimits {
    /// Reads (`GET /v1/...`) by a caller with credentials.
    pub read: Option<RateLimit>,
    /// `POST /v1/transactions...`
    pub transact: Option<RateLimit>,
    /// `POST /v1/relay`
    pub relay: Option<RateLimit>,
    /// The operator endpoints.
    pub admin: Option<RateLimit>,
    /// Public reads without credentials, per client address.
    pub anonymous: Option<RateLimit>,
}

/// `{ per_second = R, burst = B }`: R requests a second on average, up to B at once (default: R, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// `[api.jwt]`: who issues the tokens the API accepts, and where their keys are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwtSettings {
    /// `jwks_url`: the issuer's JSON Web Key Set (`https://`, or `http://` on a loopback host).
    pub jwks_url: url::Url,
    /// `issuer`: the `iss` every token must carry.
    pub issuer: String,
    /// `audience`: one or more accepted `aud` values; a token must name one of them.
    pub audience: Vec<String>,
    /// `scopes_claim`: the claim holding the scopes (a space-separated string or an array of
    /// `read`, `transact`, `relay`, `admin`; others are ignored). Default `scope`.
    pub scopes_claim: String,
    /// `algorithms`: the signature algorithms accepted. Default all of `RS256`, `ES256`, `EdDSA`.
    pub algorithms: Vec<JwtAlgorithm>,
    /// `leeway`: clock skew allowed on `exp` and `nbf`. Default 30s.
    #[serde(with = "humantime_serde_text")]
    pub leeway: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JwtAlgorithm {
    RS256,
    ES256,
    EdDSA,
}

/// Who may call the API from a browser page of another origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`): reads and writes, with the `Authorization` header.
    pub origins: Vec<String>,
    /// `*` was given: any other origin may read (GET), never with credentials and never write.
    pub any_origin_reads: bool,
}

impl CorsSettings {
    pub fn is_enabled(&self) -> bool {
        self.any_origin_reads || !self.origins.is_empty()
    }
}

/// One API key, stored as the SHA-256 of the key; the key itself is never in the configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub name: String,
    #[serde(serialize_with = "hex_bytes")]
    pub key_sha256: [u8; 32],
    pub scopes: Vec<Scope>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Transact,
    Relay,
    Admin,
}

impl Scope {
    /// `read`, `transact`, `relay` or `admin`.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "transact" => Some(Scope::Transact),
            "relay" => Some(Scope::Relay),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize)]
pub struct TelemetrySettings {
    /// `telemetry.log_format`: `text` (default) or `json`; `--log-format` overrides it.
    pub log_format: LogFormat,
    /// `telemetry.log_filter`: a tracing filter such as `info,gemgate_indexer=debug`. Default
    /// `DEFAULT_LOG_FILTER`.
    pub log_filter: String,
    /// `telemetry.listen`: where a process that serves no API (`gemgate index`, `dispatch`, `txm`) answers
    /// `/health`, `/ready` and `/metrics`, for probes and scrapers. Default: none.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[[chains]]`
#[derive(Debug, Clone, Serialize)]
pub struct ChainSettings {
    pub id: ChainId,
    /// A display name, default `chain-<id>`.
    pub name: String,
    /// RPC endpoints in order of preference; more than one means failover.
    pub rpc: Vec<SecretUrl>,
    /// `chains.ws`: websocket endpoints for pushed heads (`newHeads`), one or several; empty: polling only.
    pub ws: Vec<SecretUrl>,
    /// Depth used for `safe`/`finalized` where the node has no such tags. Default 12.
    pub confirmations: u64,
    /// How often to poll for a new head when there is no websocket. Default 1s.
    #[serde(with = "duration_text")]
    pub poll_interval: Duration,
    /// `chains.multicall3`: where batched view calls go (`"none"`: no Multicall3, calls run side by side).
    /// Default the canonical `0xcA11bde05977b3631167028862bE2a173976CA11`.
    pub multicall3: Option<Address>,
}

/// `[[contracts]]`
#[derive(Debug, Clone, Serialize)]
pub struct ContractSettings {
    pub name: String,
    pub chain: ChainId,
    pub address: Address,
    /// ABI files (absolute paths, resolved against the config file's folder).
    pub abi: Vec<PathBuf>,
    /// An EIP-2535 Diamond: facets are discovered through the loupe and the Gemforce ABIs are built in.
    pub diamond: bool,
    /// Decode with the built-in Gemforce ABIs (default: the value of `diamond`); for Gemforce contracts that
    /// are not the Diamond, such as the identity factory or the treasury.
    pub gemforce: bool,
    pub start_block: u64,
}

/// `[[sinks]]`
#[derive(Debug, Clone, Serialize)]
pub struct SinkSettings {
    pub name: String,
    pub kind: SinkKind,
    #[serde(serialize_with = "finality_text")]
    pub finality: Finality,
    /// `contract.Event` names to deliver; empty means all.
    pub events: Vec<String>,
    /// Attempts before a message goes to the dead-letter table. Default 10.
    pub max_attempts: u32,
    /// `format` (and `content_mode`): what the sink sends for each message.
    pub format: MessageFormat,
}

/// What a sink sends: gemgate's envelope as it is (`format = "envelope"`, the default), or a CloudEvent
/// (`format = "cloudevents"`) whose data is the envelope, in the protocol binding's structured
/// (`content_mode = "structured"`, the default) or binary (`content_mode = "binary"`) content mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageFormat {
    #[default]
    Envelope,
    CloudeventsStructured,
    CloudeventsBinary,
}

/// How a webhook sink signs: Standard Webhooks (`signature = "standard"`, the default: `webhook-*` headers,
/// `whsec_` secrets) or gemgate's own `Gemgate-*` headers (`signature = "gemgate"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSignature {
    #[default]
    Standard,
    Gemgate,
}

fn finality_text<S: serde::Serializer>(finality: &Finality, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&finality.to_string())
}

/// Kind-specific sink settings.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkKind {
    Amqp { url: SecretUrl, exchange: String, queue: Option<String> },
    Kafka { brokers: Vec<String>, topic: String },
    Nats { url: SecretUrl, subject: String, stream: String },
    Redis { url: SecretUrl, stream: String, maxlen: Option<u64> },
    Webhook { url: SecretUrl, secrets: Vec<Secret<String>>, strict_order: bool, signature: WebhookSignature },
}

impl SinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Amqp { .. } => "amqp",
            SinkKind::Kafka { .. } => "kafka",
            SinkKind::Nats { .. } => "nats",
            SinkKind::Redis { .. } => "redis",
            SinkKind::Webhook { .. } => "webhook",
        }
    }
}

/// `[[signers]]`
#[derive(Debug, Clone, Serialize)]
pub struct SignerSettings {
    pub name: String,
    pub chains: Vec<ChainId>,
    pub kind: SignerKind,
}

/// Kind-specific signer settings. Key material is read at load time and held as secrets.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SignerKind {
    Local {
        key: Secret<String>,
    },
    Keystore {
        path: PathBuf,
        password: Secret<String>,
    },
    Dfns {
        base_url: SecretUrl,
        app_id: String,
        wallet_id: String,
        token: Secret<String>,
        credential_id: String,
        private_key: Secret<String>,
    },
    /// An asymmetric `ECC_SECG_P256K1` key in AWS KMS (built with the `aws-kms` cargo feature). Credentials
    /// come from the AWS default chain (environment, profile, web identity, ECS, instance metadata), never
    /// from this file.
    AwsKms {
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
        /// Else the AWS default chain's region (`AWS_REGION`, profile).
        region: Option<String>,
        /// Another KMS endpoint (a VPC endpoint, a local KMS); else the region's public one.
        endpoint: Option<SecretUrl>,
    },
}

mod duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}
