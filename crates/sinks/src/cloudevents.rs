//! CloudEvents 1.0 (`format = "cloudevents"`): every message becomes a CloudEvent whose `data` is the
//! message's JSON body (the event envelope for chain events), in the protocol binding's structured or
//! binary content mode (`content_mode`).
//!
//! Attributes:
//! - `id`: `<message id>:<outbox position>`, one value per outbox row, so a re-sent row is a duplicate
//!   (same `id`) while a retraction, or an event a second reorg brings back, is a distinct event;
//! - `source`: the contract as a CAIP-10 account (`eip155:<chain id>:<address>`) for chain events, the chain
//!   as a CAIP-2 id (`eip155:<chain id>`) for other messages of a chain, `urn:gemgate` otherwise;
//! - `type`: `gemgate.event.<contract>.<Event>` for chain events, `gemgate.<kind>` otherwise
//!   (`gemgate.transaction.included`, `gemgate.webhook.gemforce`, `gemgate.drift.detected`);
//! - `time`: when gemgate sent it (RFC 3339, UTC; the envelope carries no block time, and the JavaScript
//!   SDK's Kafka binding refuses a structured event without `time`);
//! - `datacontenttype`: `application/json`;
//! - extensions `partitionkey` (the ordering key; the Kafka record key), `gemgateid` (the stable message
//!   id of the envelope) and `gemgatestatus` (`canonical` | `retracted`).

use std::borrow::Cow;

use gemgate_config::MessageFormat;
use gemgate_domain::OutboxMessage;

/// The media type of a structured CloudEvent in the JSON event format.
/// (Lower-case `utf-8`: the JavaScript SDK matches the whole value, parameters included.)
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The media type of the data (and of the body in binary mode and without CloudEvents).
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A message's CloudEvents attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub type_: String,
    pub partition_key: String,
    pub gemgate_id: String,
    pub status: &'static str,
    pub time: String,
}

impl CloudEvent {
    pub fn of(message: &OutboxMessage) -> Self {
        let source = match (message.kind.as_str(), message.chain_id) {
            ("event", chain) => match event_address(&message.payload) {
                Some(address) => format!("eip155:{chain}:{address}"),
                None => format!("eip155:{chain}"),
            },
            (_, 0) => "urn:gemgate".to_string(),
            (_, chain) => format!("eip155:{chain}"),
        };
        let type_ = if message.kind == "event" {
            format!("gemgate.event.{}.{}", message.contract, message.event)
        } else {
            format!("gemgate.{}", message.kind)
        };
        Self {
            id: message.delivery_id(),
            source,
            type_,
            partition_key: message.ordering_key.clone(),
            gemgate_id: message.id.clone(),
            status: message.status.as_str(),
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }

    /// The context attributes and their canonical string values, without `datacontenttype` (which
    /// bindings map to their content-type field) and without any binding's prefix.
    pub fn attributes(&self) -> [(&'static str, &str); 8] {
        [
            ("specversion", "1.0"),
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.type_),
            ("time", &self.time),
            ("partitionkey", &self.partition_key),
            ("gemgateid", &self.gemgate_id),
            ("gemgatestatus", self.status),
        ]
    }

    /// The event in the JSON event format, `data` being `data_json` as it is (already JSON).
    pub fn structured(&self, data_json: &str) -> String {
        let mut out = String::with_capacity(data_json.len() + 256);
        out.push('{');
        for (name, value) in self.attributes() {
            out.push_str(&serde_json::to_string(name).unwrap_or_default());
            out.push(':');
            out.push_str(&serde_json::to_string(value).unwrap_or_default());
            out.push(',');
        }
        out.push_str("\"datacontenttype\":\"application/json\",\"data\":");
        out.push_str(data_json);
        out.push('}');
        out
    }
}

/// The `address` of a chain event's envelope.
fn event_address(payload: &str) -> Option<String> {
    let envelope: serde_json::Value = serde_json::from_str(payload).ok()?;
    envelope.get("address")?.as_str().map(str::to_string)
}

/// What a sink sends for one message in its configured format.
#[derive(Debug)]
pub struct Encoded<'a> {
    pub body: Cow<'a, str>,
    /// The body's media type.
    pub content_type: &'static str,
    /// Binary mode only: the attributes a binding puts in its headers (with its own prefix).
    pub event: Option<CloudEvent>,
}

/// The body, media type and (binary mode) attributes of `message` in `format`.
pub fn encode(format: MessageFormat, message: &OutboxMessage) -> Encoded<'_> {
    match format {
        MessageFormat::Envelope => {
            Encoded { body: Cow::Borrowed(&message.payload), content_type: DATA_CONTENT_TYPE, event: None }
        }
        MessageFormat::CloudeventsStructured => Encoded {
            body: Cow::Owned(CloudEvent::of(message).structured(&message.payload)),
            content_type: STRUCTURED_CONTENT_TYPE,
            event: None,
        },
        MessageFormat::CloudeventsBinary => Encoded {
            body: Cow::Borrowed(&message.payload),
            content_type: DATA_CONTENT_TYPE,
            event: Some(CloudEvent::of(message)),
        },
    }
}

/// A header value as the HTTP and NATS bindings want it: space, `"`, `%` and everything outside printable
/// ASCII percent-encoded (as UTF-8 bytes).
pub fn header_value(text: &str) -> Cow<'_, str> {
    let plain = |b: u8| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%';
    if text.bytes().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for b in text.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gemgate_domain::EventStatus;

    use super::*;

    fn message(kind: &str, status: EventStatus) -> OutboxMessage {
        OutboxMessage {
            seq: 42,
            id: "0xabc".into(),
            kind: kind.into(),
            chain_id: 31337,
            block_number: Some(7),
            ordering_key: "deal:1".into(),
            status,
            contract: "gemforce".into(),
            event: "TradeDealCreated".into(),
            payload: Arc::from(r#"{"id":"0xabc","address":"0x5FbDB2315678afecb367f032d93F642f64180aa3"}"#),
        }
    }

    #[test]
    fn chain_events_are_sourced_by_their_contract_and_typed_by_their_event() {
        let event = CloudEvent::of(&message("event", EventStatus::Retracted));
        assert_eq!(event.id, "0xabc:42", "one id per outbox row");
        assert_eq!(event.source, "eip155:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3");
        assert_eq!(event.type_, "gemgate.event.gemforce.TradeDealCreated");
        assert_eq!(event.status, "retracted");
        let update = CloudEvent::of(&message("transaction.included", EventStatus::Canonical));
        assert_eq!(
            (update.source.as_str(), update.type_.as_str()),
            ("eip155:31337", "gemgate.transaction.included")
        );
    }

    #[test]
    fn the_structured_form_is_json_with_the_data_as_it_was() {
        let m = message("event", EventStatus::Canonical);
        let body = CloudEvent::of(&m).structured(&m.payload);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["specversion"], "1.0");
        assert_eq!(parsed["datacontenttype"], "application/json");
        assert_eq!(parsed["partitionkey"], "deal:1");
        assert_eq!(parsed["data"], serde_json::from_str::<serde_json::Value>(&m.payload).unwrap());
    }

    #[test]
    fn header_values_are_percent_encoded_where_the_bindings_say() {
        assert_eq!(header_value("eip155:1:0xab"), "eip155:1:0xab");
        assert_eq!(header_value("a b\"c%d\u{e9}"), "a%20b%22c%25d%C3%A9");
    }
}
