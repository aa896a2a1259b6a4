//! The event envelope: one decoded log, the same everywhere it travels (API, live stream, every sink).
//! Its id is derived from where the log sits on the chain, so a replay or a restart yields the same id and
//! consumers can deduplicate; a reorged-out log keeps its id when it is retracted.

use std::fmt;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use serde::{Deserialize, Serialize};

use crate::{ChainId, FinalityLevel};

/// Version of the envelope's shape. Bump when a field changes meaning or disappears.
pub const ENVELOPE_SCHEMA: u32 = 1;

/// Stable identity of an event: keccak256 of the chain id, the block hash and the log index.
///
/// The block hash (not the number) is part of it, so the same position on two branches of a reorg gives
/// two ids, while re-reading the same canonical log always gives the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub B256);

impl EventId {
    pub fn derive(chain_id: ChainId, block_hash: B256, log_index: u64) -> Self {
        let mut preimage = [0u8; 8 + 32 + 8];
        preimage[..8].copy_from_slice(&chain_id.to_be_bytes());
        preimage[8..40].copy_from_slice(block_hash.as_slice());
        preimage[40..].copy_from_slice(&log_index.to_be_bytes());
        Self(keccak256(preimage))
    }
}

impl std::str::FromStr for EventId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<B256>().map(EventId).map_err(|e| format!("{s:?} is not an event id: {e}"))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether an event is on the canonical chain or was removed by a reorg after being published.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Canonical,
    Retracted,
}

impl EventStatus {
    /// `canonical` or `retracted`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Canonical => "canonical",
            EventStatus::Retracted => "retracted",
        }
    }
}

/// The event envelope of DESIGN.md. Field names are the public contract.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainEvent {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: EventId,
    pub chain_id: ChainId,
    pub block_number: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub block_hash: B256,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tx_hash: B256,
    pub tx_index: u64,
    pub log_index: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Address,
    /// The configured contract name.
    pub contract: String,
    /// The event's name from the ABI (not unique: dispatch is on `signature`).
    pub event: String,
    /// topic0 as 0x-hex, the unique key of the event type.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub signature: B256,
    /// Decoded arguments keyed by ABI parameter name; integers as decimal strings. `null` when the
    /// event's topic0 is not in any loaded ABI (then `event` is empty and only the raw fields say what it is).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub args: serde_json::Value,
    /// The raw log topics, topic0 first (an extension of DESIGN.md's envelope: lets a consumer decode
    /// events gemgate has no ABI for and check what it decoded).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub topics: Vec<B256>,
    /// The raw log data.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub data: Bytes,
    /// The sender of the transaction, filled only for events a projection needs it for (a trade deal's
    /// creator); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tx_from: Option<Address>,
    pub status: EventStatus,
    pub finality: FinalityLevel,
    pub schema: u32,
}

impl ChainEvent {
    /// The default ordering key: the contract plus the event's aggregate id (the first of `tradeDealId`,
    /// `tokenId`, `itemId`, `identity`, `_address` among its arguments), else the contract alone. Messages
    /// with the same key are delivered in order; different keys never wait for each other.
    pub fn ordering_key(&self) -> String {
        const AGGREGATES: [&str; 5] = ["tradeDealId", "tokenId", "itemId", "identity", "_address"];
        let aggregate = AGGREGATES.iter().find_map(|name| {
            self.args.get(name).and_then(|v| v.as_str()).map(|value| format!("{name}={value}"))
        });
        match aggregate {
            Some(aggregate) => format!("{}:{}:{aggregate}", self.chain_id, self.contract),
            None => format!("{}:{}", self.chain_id, self.contract),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_deterministic_and_depends_on_every_input() {
        let hash = B256::repeat_byte(7);
        let id = EventId::derive(1, hash, 3);
        assert_eq!(id, EventId::derive(1, hash, 3));
        assert_ne!(id, EventId::derive(2, hash, 3));
        assert_ne!(id, EventId::derive(1, B256::repeat_byte(8), 3));
        assert_ne!(id, EventId::derive(1, hash, 4));
    }

    #[test]
    fn envelope_serializes_with_public_field_names() {
        let event = ChainEvent {
            id: EventId::derive(31337, B256::ZERO, 0),
            chain_id: 31337,
            block_number: 5,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            tx_index: 0,
            log_index: 0,
            address: Address::ZERO,
            contract: "gemforce".into(),
            event: "TradeDealCreated".into(),
            signature: B256::ZERO,
            args: serde_json::json!({"tradeDealId": "1"}),
            topics: vec![B256::ZERO],
            data: Bytes::new(),
            tx_from: None,
            status: EventStatus::Canonical,
            finality: FinalityLevel::Latest,
            schema: ENVELOPE_SCHEMA,
        };
        let json = serde_json::to_value(&event).unwrap();
        for key in [
            "id",
            "chain_id",
            "block_number",
            "block_hash",
            "tx_hash",
            "tx_index",
            "log_index",
            "address",
            "contract",
            "event",
            "signature",
            "args",
            "status",
            "finality",
            "schema",
        ] {
            assert!(json.get(key).is_some(), "missing envelope field {key}");
        }
        assert_eq!(json["status"], "canonical");
        assert_eq!(json["finality"], "latest");
    }
}
