//! Running several gemgate processes on one database: leases with fencing tokens. One process at a time
//! holds each lease (a chain's indexer, a sink's dispatcher, a signer's transaction worker); every write
//! it makes under the lease carries the lease's `Fence`, and the store refuses the write once another
//! holder has taken the lease since (its token is higher), so a paused old holder's late commit never
//! lands. Each process also holds a `process` lease on its own name, renewed as a heartbeat, which says
//! which parts it runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::ChainId;

/// What a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseRole {
    /// A process's heartbeat; its name is the process's holder name.
    Process,
    /// The indexer of one chain; its name is the chain id.
    Indexer,
    /// The dispatcher of one sink; its name is the sink's name.
    Sink,
    /// The transaction worker of one (chain, signer); its name is `chain_id/address` (or `chain_id/raw`).
    Signer,
    /// A scheduled job run by one process at a time: `snapshot NAME`, `reconcile`.
    Job,
}

impl LeaseRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Indexer => "indexer",
            Self::Sink => "sink",
            Self::Signer => "signer",
            Self::Job => "job",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Process, Self::Indexer, Self::Sink, Self::Signer, Self::Job]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// One lease: a role and the name of what it covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseKey {
    pub role: LeaseRole,
    pub name: String,
}

impl LeaseKey {
    pub fn indexer(chain_id: ChainId) -> Self {
        Self { role: LeaseRole::Indexer, name: chain_id.to_string() }
    }

    pub fn sink(name: &str) -> Self {
        Self { role: LeaseRole::Sink, name: name.into() }
    }

    pub fn signer(chain_id: ChainId, sender: &str) -> Self {
        Self { role: LeaseRole::Signer, name: format!("{chain_id}/{sender}") }
    }

    pub fn job(name: impl Into<String>) -> Self {
        Self { role: LeaseRole::Job, name: name.into() }
    }

    pub fn process(holder: &str) -> Self {
        Self { role: LeaseRole::Process, name: holder.into() }
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role.as_str(), self.name)
    }
}

/// A held lease: writes made under it carry it, and commit only while its token is still the lease's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub key: LeaseKey,
    pub token: u64,
}

/// A lease as stored: who holds it, with which token, since when, last renewed, until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub key: LeaseKey,
    pub holder: String,
    pub token: u64,
    pub acquired_ms: u64,
    pub renewed_ms: u64,
    pub expires_ms: u64,
    /// For a process lease: the parts it runs, comma-separated (`index,dispatch,api,txm`).
    pub detail: Option<String>,
}

impl LeaseRecord {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }
}

/// Whether a process lease's `detail` lists `part`.
pub fn runs_part(detail: Option<&str>, part: &str) -> bool {
    detail.is_some_and(|d| d.split(',').any(|p| p == part))
}

/// How many of `items` leases a process should hold when `members` processes share them: the ceiling, so
/// every item has an owner even when they do not divide evenly. At least one while there are items.
pub fn fair_share(items: usize, members: usize) -> usize {
    if items == 0 {
        return 0;
    }
    items.div_ceil(members.max(1))
}

/// Where this process stands on one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Standing {
    /// It holds the lease (with this token, since this Unix millisecond).
    Leader { token: u64, since_ms: u64 },
    /// Another process holds it, or it waits its turn; it takes over when the lease expires.
    Standby,
}

/// What this process runs and which leases it leads or stands by for: its readiness (`/ready`) and its
/// logs read this; the lease loops write it.
#[derive(Debug, Default)]
pub struct LocalCluster {
    pub holder: String,
    /// The parts this process runs (`index`, `dispatch`, `api`, `txm`).
    pub parts: Vec<String>,
    standings: Mutex<BTreeMap<LeaseKey, Standing>>,
}

impl LocalCluster {
    pub fn new(holder: &str, parts: &[&str]) -> Self {
        Self {
            holder: holder.into(),
            parts: parts.iter().map(|p| p.to_string()).collect(),
            standings: Mutex::default(),
        }
    }

    pub fn set(&self, key: &LeaseKey, standing: Standing) {
        self.standings.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), standing);
    }

    pub fn standings(&self) -> BTreeMap<LeaseKey, Standing> {
        self.standings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The leases of `role` this process leads.
    pub fn led(&self, role: LeaseRole) -> Vec<LeaseKey> {
        self.standings()
            .into_iter()
            .filter(|(k, s)| k.role == role && matches!(s, Standing::Leader { .. }))
            .map(|(k, _)| k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_shares_cover_every_item() {
        for role in
            [LeaseRole::Process, LeaseRole::Indexer, LeaseRole::Sink, LeaseRole::Signer, LeaseRole::Job]
        {
            assert_eq!(LeaseRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(LeaseRole::parse("leader"), None);
        assert_eq!(LeaseKey::signer(1, "0xab").name, "1/0xab");
        for items in 0..10 {
            for members in 0..5 {
                let share = fair_share(items, members);
                assert!(share * members.max(1) >= items, "{items} items, {members} members: {share}");
                assert!(items == 0 || share >= 1);
            }
        }
        assert_eq!(fair_share(2, 2), 1);
        assert_eq!(fair_share(3, 2), 2);
        assert!(runs_part(Some("index,dispatch"), "dispatch"));
        assert!(!runs_part(Some("index,dispatcher"), "dispatch"));
        assert!(!runs_part(None, "index"));
    }
}
