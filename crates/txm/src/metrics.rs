//! The transaction manager's metrics, registered under `gemgate_txm_`: requests accepted and their state
//! changes, requests by state in the ledger, attempts by purpose, re-pricings, no-op fills, nonce gaps
//! repaired, the time from acceptance to inclusion, and each signer's balance and pending count.
//! Counted from the changes a worker committed, so a pass that failed counts nothing.

use std::collections::HashMap;

use gemgate_domain::ledger::{LiveTx, TxChange};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabel {
    pub chain_id: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainStateLabels {
    pub chain_id: u64,
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurposeLabels {
    pub chain_id: u64,
    /// `send` (the request itself, first or re-priced) or `noop` (a zero-value self-transfer).
    pub purpose: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GapLabels {
    pub chain_id: u64,
    /// `rebroadcast` (the node had forgotten it) or `noop` (a nonce that cannot be sent, filled).
    pub how: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignerLabels {
    pub chain_id: u64,
    pub signer: String,
}

/// Queued to included: 50 ms doubling to about 14 minutes.
fn inclusion_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

#[derive(Debug, Clone)]
pub struct TxmMetrics {
    pub accepted: Family<ChainLabel, Counter>,
    pub state_changes: Family<ChainStateLabels, Counter>,
    /// Requests in the ledger by state (refreshed by the workers every few seconds).
    pub requests: Family<StateLabel, Gauge>,
    pub attempts: Family<PurposeLabels, Counter>,
    pub repricings: Family<ChainLabel, Counter>,
    pub noop_fills: Family<ChainLabel, Counter>,
    pub gaps_repaired: Family<GapLabels, Counter>,
    pub queued_to_included: Family<ChainLabel, Histogram, fn() -> Histogram>,
    /// The signer's balance in ether (a float: wei overflow a 64-bit gauge).
    pub signer_balance: Family<SignerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Requests of the signer not yet included (queued, signed, submitted).
    pub signer_pending: Family<SignerLabels, Gauge>,
}

impl Default for TxmMetrics {
    fn default() -> Self {
        Self {
            accepted: Family::default(),
            state_changes: Family::default(),
            requests: Family::default(),
            attempts: Family::default(),
            repricings: Family::default(),
            noop_fills: Family::default(),
            gaps_repaired: Family::default(),
            queued_to_included: Family::new_with_constructor(inclusion_histogram),
            signer_balance: Family::default(),
            signer_pending: Family::default(),
        }
    }
}

impl TxmMetrics {
    /// The process's transaction metrics (registered on first use, shared after).
    pub fn register(metrics: &gemgate_telemetry::Metrics) -> Self {
        metrics.shared("txm", |r| {
            let m = Self::default();
            r.register("accepted", "requests accepted into the ledger", m.accepted.clone());
            r.register("state_changes", "requests that moved to a state", m.state_changes.clone());
            r.register("requests", "requests in the ledger by state", m.requests.clone());
            r.register("attempts", "signed attempts stored, by purpose", m.attempts.clone());
            r.register(
                "repricings",
                "attempts re-priced because the last one was not mined",
                m.repricings.clone(),
            );
            r.register("noop_fills", "nonces filled with a zero-value self-transfer", m.noop_fills.clone());
            r.register("nonce_gaps_repaired", "nonce gaps closed, by how", m.gaps_repaired.clone());
            r.register(
                "queued_to_included_seconds",
                "time from acceptance to inclusion",
                m.queued_to_included.clone(),
            );
            r.register("signer_balance_ether", "a signer's balance", m.signer_balance.clone());
            r.register("signer_pending", "a signer's requests not yet included", m.signer_pending.clone());
            m
        })
    }

    /// Shows a chain's counters at zero before anything happens (a family without samples is not exposed).
    pub fn start_chain(&self, chain_id: u64) {
        let chain = ChainLabel { chain_id };
        for family in [&self.accepted, &self.repricings, &self.noop_fills] {
            let _ = family.get_or_create(&chain);
        }
        for how in ["rebroadcast", "noop"] {
            let _ = self.gaps_repaired.get_or_create(&GapLabels { chain_id, how });
        }
        let _ = self.queued_to_included.get_or_create(&chain);
    }

    /// Counts what a pass committed: `changes` against the requests they were made from.
    pub fn committed(&self, chain_id: u64, live: &[LiveTx], changes: &[TxChange], now_ms: u64) {
        let by_id: HashMap<&str, &LiveTx> = live.iter().map(|l| (l.record.id.as_str(), l)).collect();
        for change in changes {
            let before = by_id.get(change.id.as_str());
            if change.to != change.from {
                let labels = ChainStateLabels { chain_id, state: change.to.as_str() };
                self.state_changes.get_or_create(&labels).inc();
                if change.to == gemgate_domain::TxState::Included
                    && let Some(live) = before.filter(|l| l.created_ms > 0)
                {
                    let seconds = now_ms.saturating_sub(live.created_ms) as f64 / 1e3;
                    self.queued_to_included.get_or_create(&ChainLabel { chain_id }).observe(seconds);
                }
            }
            let Some(attempt) = &change.attempt else { continue };
            let purpose = attempt.purpose.clone();
            self.attempts.get_or_create(&PurposeLabels { chain_id, purpose }).inc();
            let had_noop = before.is_some_and(|l| l.attempts.iter().any(|a| a.purpose == "noop"));
            if attempt.purpose == "noop" && !had_noop {
                self.noop_fills.get_or_create(&ChainLabel { chain_id }).inc();
                // A cancel is asked for; a refusal or an expiry would otherwise leave a hole.
                let ending = change.ending.flatten().or(before.and_then(|l| l.record.ending));
                if ending != Some(gemgate_domain::TxState::Cancelled) {
                    self.gaps_repaired.get_or_create(&GapLabels { chain_id, how: "noop" }).inc();
                }
            } else if attempt.attempt > 0 {
                self.repricings.get_or_create(&ChainLabel { chain_id }).inc();
            }
        }
    }
}
