//! Several processes on one database: `GET /v1/cluster` (every lease: which process holds which chain's
//! indexer, which sink's dispatcher, which signer, since when, last renewal; and the processes themselves)
//! and `GET /ready` (this process's roles, and whether it leads or stands by for each lease).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gemgate_domain::cluster::{LeaseRecord, LeaseRole, Standing};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dto::ErrorBody;
use crate::{ApiError, AppState};

/// One lease as `GET /v1/cluster` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    /// `indexer` (name: chain id), `sink` (name: sink), `signer` (name: `chain_id/address`).
    pub role: &'static str,
    pub name: String,
    /// The process holding it (its `cluster.name`, or host:pid:nonce).
    pub holder: String,
    /// The fencing token: raised at every change of holder.
    pub token: u64,
    /// Unix milliseconds: held by this holder since, last renewed, valid until.
    pub since_ms: u64,
    pub renewed_ms: u64,
    pub expires_ms: u64,
    /// Not expired: its holder is alive (an expired lease is free for a standby to take).
    pub live: bool,
}

/// A process as `GET /v1/cluster` shows it (from its heartbeat lease).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessView {
    pub name: String,
    /// The parts it runs: `index`, `dispatch`, `api`, `txm`.
    pub parts: Vec<String>,
    pub since_ms: u64,
    pub renewed_ms: u64,
    pub live: bool,
}

/// `GET /v1/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The server's clock (Unix milliseconds), to read the lease times against.
    pub now_ms: u64,
    pub processes: Vec<ProcessView>,
    pub leases: Vec<LeaseView>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The leases table as the API and `gemgate status` show it.
pub fn cluster_view(records: &[LeaseRecord], now_ms: u64) -> ClusterView {
    let mut processes = Vec::new();
    let mut leases = Vec::new();
    for r in records {
        let live = r.is_live(now_ms);
        if r.key.role == LeaseRole::Process {
            processes.push(ProcessView {
                name: r.key.name.clone(),
                parts: r
                    .detail
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
                since_ms: r.acquired_ms,
                renewed_ms: r.renewed_ms,
                live,
            });
        } else {
            leases.push(LeaseView {
                role: r.key.role.as_str(),
                name: r.key.name.clone(),
                holder: r.holder.clone(),
                token: r.token,
                since_ms: r.acquired_ms,
                renewed_ms: r.renewed_ms,
                expires_ms: r.expires_ms,
                live,
            });
        }
    }
    ClusterView { now_ms, processes, leases }
}

#[utoipa::path(get, path = "/cluster",
    tag = "service",
    responses(
        (status = 200, description = "every process and lease on this database", body = ClusterView),
        (status = 503, description = "the database does not answer", body = ErrorBody),
    ),
)]
pub async fn cluster(State(state): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let records = state.store.leases.leases().await?;
    Ok(Json(cluster_view(&records, now_ms())))
}

/// Where this process stands on one lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub role: &'static str,
    pub name: String,
    /// `leader` or `standby`.
    pub state: &'static str,
    /// While leader: the fencing token and since when (Unix milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// `GET /ready`: `ready` when the database answers, with what this process runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// This process's name in the leases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The parts it runs: `index`, `dispatch`, `api`, `txm`.
    pub parts: Vec<String>,
    /// Each chain's indexer and each sink's dispatcher this process leads or stands by for.
    pub leases: Vec<RoleView>,
}

/// Ready when the database answers.
#[utoipa::path(get, path = "/ready",
    tag = "service",
    responses(
        (status = 200, description = "the database answers; this process's roles", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (holder, parts, leases) = match &state.cluster {
        Some(local) => {
            let leases = local
                .standings()
                .into_iter()
                .map(|(key, standing)| {
                    let (state, token, since_ms) = match standing {
                        Standing::Leader { token, since_ms } => ("leader", Some(token), Some(since_ms)),
                        Standing::Standby => ("standby", None, None),
                    };
                    RoleView { role: key.role.as_str(), name: key.name, state, token, since_ms }
                })
                .collect();
            (Some(local.holder.clone()), local.parts.clone(), leases)
        }
        None => (None, vec!["api".to_string()], Vec::new()),
    };
    let (code, status) = match state.store.reads.heads().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    (code, Json(Readiness { status, holder, parts, leases }))
}
