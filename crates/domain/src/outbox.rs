//! Outbox messages: what the batch transaction writes for the dispatchers to deliver. An outbox row is
//! written in the same database transaction as the state change it announces, so a message exists if and
//! only if its change was committed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{ChainId, EventStatus};

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Position in the outbox; dispatchers keep their cursor on it.
    pub seq: u64,
    /// Stable message id: the event id for chain events, `<tx id>:<state>` for transaction updates.
    /// A retraction carries the id of the message it retracts.
    pub id: String,
    /// `event` for chain events, `transaction.<state>` for transaction lifecycle updates.
    pub kind: String,
    pub chain_id: ChainId,
    /// Block the message belongs to, when it belongs to one (finality filters use it).
    pub block_number: Option<u64>,
    /// Order is kept per key; unrelated keys never wait for each other.
    pub ordering_key: String,
    pub status: EventStatus,
    /// The configured contract name and the event name of a chain event (empty for other kinds): what
    /// sink filters and routing keys use.
    pub contract: String,
    pub event: String,
    /// The JSON body delivered to sinks (the event envelope for chain events), serialized once: every sink
    /// sends these exact bytes.
    pub payload: Arc<str>,
}

impl OutboxMessage {
    /// The body parsed (for consumers of this type that need fields beyond the ones above).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}
