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
    /// `<id>:<outbox position>`: one value per outbox row, what deduplicating transports key on (JetStream's
    /// `Nats-Msg-Id`, Standard Webhooks' `webhook-id`, the CloudEvents `id`). A re-send of the row repeats
    /// it; a retraction or an event a second reorg brings back is a row of its own with a value of its own.
    pub fn delivery_id(&self) -> String {
        format!("{}:{}", self.id, self.seq)
    }

    /// The body parsed (for consumers of this type that need fields beyond the ones above).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

impl OutboxMessage {
    /// The name sink filters match: `contract.Event` for a chain event (or its retraction), else the kind
    /// (`transaction.included`, `webhook.gemforce`).
    pub fn filter_name(&self) -> std::borrow::Cow<'_, str> {
        if self.kind == "event" {
            format!("{}.{}", self.contract, self.event).into()
        } else {
            self.kind.as_str().into()
        }
    }
}

/// Which messages a sink takes (`sinks.events`): exact names (`gemforce.TradeDealCreated`,
/// `transaction.included`, `webhook.gemforce`) or a family ending in `.*` (`transaction.*`, `gemforce.*`).
/// An empty filter takes everything. Patterns are validated by the config crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    patterns: Vec<String>,
}

impl MessageFilter {
    pub fn new(patterns: Vec<String>) -> Self {
        Self { patterns }
    }

    pub fn matches(&self, message: &OutboxMessage) -> bool {
        self.patterns.is_empty() || self.matches_name(&message.filter_name())
    }

    fn matches_name(&self, name: &str) -> bool {
        self.patterns.iter().any(|pattern| match pattern.strip_suffix(".*") {
            Some(family) => name.strip_prefix(family).is_some_and(|rest| rest.starts_with('.')),
            None => pattern == name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: &str, contract: &str, event: &str) -> OutboxMessage {
        OutboxMessage {
            seq: 1,
            id: "id".into(),
            kind: kind.into(),
            chain_id: 1,
            block_number: None,
            ordering_key: "k".into(),
            status: EventStatus::Canonical,
            contract: contract.into(),
            event: event.into(),
            payload: Arc::from("{}"),
        }
    }

    #[test]
    fn filters_match_events_kinds_and_families() {
        let deal = message("event", "gemforce", "TradeDealCreated");
        let included = message("transaction.included", "", "");
        let queued = message("transaction.queued", "", "");
        let webhook = message("webhook.gemforce", "", "");
        let filter = |p: &[&str]| MessageFilter::new(p.iter().map(|s| s.to_string()).collect());

        assert!(filter(&[]).matches(&deal) && filter(&[]).matches(&webhook), "empty takes everything");
        let events = filter(&["gemforce.TradeDealCreated"]);
        assert!(events.matches(&deal));
        assert!(!events.matches(&included) && !events.matches(&webhook));
        let family = filter(&["transaction.*"]);
        assert!(family.matches(&included) && family.matches(&queued));
        assert!(!family.matches(&deal) && !family.matches(&webhook));
        let exact = filter(&["transaction.included", "webhook.gemforce"]);
        assert!(exact.matches(&included) && exact.matches(&webhook));
        assert!(!exact.matches(&queued));
        assert!(filter(&["gemforce.*"]).matches(&deal));
        assert!(!filter(&["gem.*"]).matches(&deal), "a family matches whole name parts only");
    }
}
