//! The configuration file as written: permissive types (strings for addresses, URLs, kinds) so that
//! validation can report every problem at once, naming each key. Unknown keys are refused here, so a typo
//! is an error rather than a silently ignored setting.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub chains: Vec<RawChain>,
    #[serde(default)]
    pub contracts: Vec<RawContract>,
    #[serde(default)]
    pub sinks: Vec<RawSink>,
    #[serde(default)]
    pub signers: Vec<RawSigner>,
    #[serde(default)]
    pub txm: RawTxm,
    #[serde(default)]
    pub calls: RawCalls,
    #[serde(default)]
    pub relayers: Vec<RawRelayer>,
    #[serde(default)]
    pub snapshots: Vec<RawSnapshot>,
    #[serde(default)]
    pub reconcile: RawReconcile,
    #[serde(default)]
    pub cluster: RawCluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub lease_ttl: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconcile {
    pub every: Option<String>,
    pub heal: Option<bool>,
    pub gemforce: Option<bool>,
    pub batch: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnapshot {
    pub name: String,
    pub contract: String,
    pub function: String,
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    pub keys: Option<RawSnapshotKeys>,
    pub every: Option<String>,
    pub block: Option<String>,
    pub batch: Option<usize>,
    pub table: Option<String>,
    pub compare: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnapshotKeys {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelayer {
    pub name: String,
    pub chain: u64,
    pub forwarder: String,
    pub signer: String,
    pub max_gas_price_gwei: Option<f64>,
    pub budget_wei: Option<String>,
    pub max_value_wei: Option<String>,
    #[serde(default)]
    pub allow: Vec<RawRelayAllow>,
    pub per_user: Option<RawQuota>,
    pub per_key: Option<RawQuota>,
    pub batch: Option<RawBatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub max: Option<usize>,
    pub wait: Option<String>,
    pub refund_receiver: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelayAllow {
    pub to: String,
    #[serde(default)]
    pub functions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuota {
    pub requests: Option<u64>,
    pub window: Option<String>,
    pub gas_per_day: Option<u64>,
    pub wei_per_day: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalls {
    pub cache_mib: Option<u64>,
    pub max_batch: Option<usize>,
    pub head_max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTxm {
    pub poll_interval: Option<String>,
    pub bump_after: Option<String>,
    pub max_bump_after: Option<String>,
    pub rebroadcast_after: Option<String>,
    pub lease_ttl: Option<String>,
    pub max_fee_gwei: Option<f64>,
    pub gas_buffer_percent: Option<u64>,
    pub raw_max_fee_multiple: Option<u64>,
    #[serde(default)]
    pub raw_allow: Vec<RawAllow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub to: String,
    #[serde(default)]
    pub selectors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub url: Option<String>,
    pub max_connections: Option<u32>,
    pub idle_in_transaction_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub listen: Option<String>,
    pub public_reads: Option<bool>,
    pub gemforce_webhook_secret_env: Option<String>,
    pub gemforce_webhook_secret_file: Option<String>,
    #[serde(default)]
    pub keys: Vec<RawApiKey>,
    #[serde(default)]
    pub cors_origins: Vec<String>,
    pub jwt: Option<RawJwt>,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    pub parse: Option<RawParse>,
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParse {
    pub server_url: String,
    pub app_id: String,
    pub rest_key_env: Option<String>,
    pub rest_key_file: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub cache_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    pub read: Option<RawRate>,
    pub transact: Option<RawRate>,
    pub relay: Option<RawRate>,
    pub admin: Option<RawRate>,
    pub anonymous: Option<RawRate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub per_second: f64,
    pub burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: OneOrMany,
    pub scopes_claim: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub name: String,
    pub key_sha256: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    pub log_format: Option<String>,
    pub log_filter: Option<String>,
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChain {
    pub id: u64,
    pub name: Option<String>,
    #[serde(default)]
    pub rpc: Vec<String>,
    pub ws: Option<OneOrMany>,
    pub confirmations: Option<u64>,
    pub poll_interval: Option<String>,
    pub multicall3: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContract {
    pub name: String,
    pub chain: u64,
    pub address: String,
    #[serde(default)]
    pub abi: Vec<String>,
    #[serde(default)]
    pub diamond: bool,
    pub gemforce: Option<bool>,
    pub start_block: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    #[serde(default)]
    pub brokers: Vec<String>,
    pub exchange: Option<String>,
    pub queue: Option<String>,
    pub topic: Option<String>,
    pub subject: Option<String>,
    pub stream: Option<String>,
    pub maxlen: Option<u64>,
    pub finality: Option<toml::Value>,
    pub events: Option<Vec<String>>,
    pub max_attempts: Option<u32>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub previous_secret_env: Option<String>,
    pub previous_secret_file: Option<String>,
    pub strict_order: Option<bool>,
    pub signature: Option<String>,
    pub format: Option<String>,
    pub content_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigner {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub chains: Vec<u64>,
    pub key_env: Option<String>,
    pub key_file: Option<String>,
    pub path: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub base_url: Option<String>,
    pub app_id: Option<String>,
    pub wallet_id: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub credential_id: Option<String>,
    pub private_key_env: Option<String>,
    pub private_key_file: Option<String>,
    pub key_id: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

/// A key that takes one value or a list (`ws = "ws://..."` or `ws = ["ws://a", "ws://b"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
