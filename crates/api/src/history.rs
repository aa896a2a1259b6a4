//! The last hour of progress, for the dashboard's plots: every `INTERVAL` the API process samples each
//! chain (head, indexed, events) and each sink (position, backlog) into a ring of `SAMPLES` entries,
//! served at `GET /v1/history`. In memory and per process: a restart starts a new hour.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

pub const INTERVAL: Duration = Duration::from_secs(10);
/// An hour of samples.
pub const SAMPLES: usize = 360;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainSample {
    pub chain_id: u64,
    pub head: Option<u64>,
    pub indexed: Option<u64>,
    /// Events stored for the chain so far.
    pub events: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkSample {
    pub name: String,
    pub position: u64,
    pub backlog: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub chains: Vec<ChainSample>,
    pub sinks: Vec<SinkSample>,
}

/// The samples so far, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

async fn sample(state: &AppState) -> Option<Sample> {
    let chains = state.store.reads.chain_status().await.ok()?;
    let names: Vec<String> = state.sinks.iter().map(|s| s.name.clone()).collect();
    let sinks = state.store.delivery.sink_backlogs(&names).await.ok()?;
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Some(Sample {
        at_ms,
        chains: chains
            .iter()
            .map(|c| ChainSample { chain_id: c.chain_id, head: c.head, indexed: c.indexed, events: c.events })
            .collect(),
        sinks: sinks
            .into_iter()
            .map(|s| SinkSample { name: s.sink, position: s.position, backlog: s.backlog })
            .collect(),
    })
}

/// Samples every `INTERVAL` for as long as a router holds `state`'s history (the task ends once only it
/// does).
pub fn spawn_sampler(state: AppState) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            if Arc::strong_count(&state.history) <= 1 {
                return;
            }
            if let Some(sample) = sample(&state).await {
                state.history.push(sample);
            }
        }
    });
}

/// The dashboard's history page.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Oldest first, up to an hour.
    pub samples: Vec<Sample>,
}

#[utoipa::path(get, path = "/history",
    tag = "status",
    responses((status = 200, description = "the last hour of chain and sink progress, every 10 s", body = HistoryPage)),
)]
pub async fn history(State(state): State<AppState>) -> Json<HistoryPage> {
    Json(HistoryPage { interval_secs: INTERVAL.as_secs(), samples: state.history.samples() })
}
