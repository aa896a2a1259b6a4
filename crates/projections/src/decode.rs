//! Decoding raw logs into event envelopes: the contract is found by address, the event by topic0 in
//! that contract's merged ABI, and the arguments become JSON keyed by the ABI's parameter names (integers
//! as decimal strings, so no consumer loses precision). A log whose topic0 no ABI knows is kept, raw, with
//! `event = ""` and `args = null`; it is never dropped.

use std::collections::HashMap;

use alloy::dyn_abi::{DynSolEvent, DynSolValue, Specifier};
use alloy::json_abi::{Event, JsonAbi, Param};
use alloy_primitives::{Address, B256};
use gemgate_domain::ports::RawLog;
use gemgate_domain::{ChainEvent, ChainId, ENVELOPE_SCHEMA, EventId, EventStatus, FinalityLevel};
use serde_json::{Map, Value};

/// One configured contract: its name and events by topic0, each with its types resolved once (resolving
/// the ABI's type strings per log would cost more than decoding it).
#[derive(Debug, Clone)]
pub struct ContractAbi {
    pub name: String,
    pub chain_id: ChainId,
    pub address: Address,
    events: HashMap<B256, (Event, Option<DynSolEvent>)>,
}

fn resolved(event: &Event) -> (Event, Option<DynSolEvent>) {
    (event.clone(), event.resolve().ok())
}

impl ContractAbi {
    /// Merges the events of several ABIs (a Diamond's facets); the first definition of a topic0 wins.
    pub fn new(name: &str, chain_id: ChainId, address: Address, abis: &[JsonAbi]) -> Self {
        let mut events = HashMap::new();
        for abi in abis {
            for event in abi.events() {
                events.entry(event.selector()).or_insert_with(|| resolved(event));
            }
        }
        Self { name: name.to_string(), chain_id, address, events }
    }

    pub fn with_events(mut self, extra: impl IntoIterator<Item = Event>) -> Self {
        for event in extra {
            self.events.entry(event.selector()).or_insert_with(|| resolved(&event));
        }
        self
    }

    pub fn event(&self, topic0: &B256) -> Option<&Event> {
        self.events.get(topic0).map(|(event, _)| event)
    }

    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.values().map(|(event, _)| event)
    }
}

/// The contracts of one chain, by address.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    contracts: HashMap<Address, ContractAbi>,
}

impl Decoder {
    pub fn new(contracts: Vec<ContractAbi>) -> Self {
        Self { contracts: contracts.into_iter().map(|c| (c.address, c)).collect() }
    }

    pub fn addresses(&self) -> Vec<Address> {
        let mut addresses: Vec<_> = self.contracts.keys().copied().collect();
        addresses.sort();
        addresses
    }

    pub fn contract(&self, address: &Address) -> Option<&ContractAbi> {
        self.contracts.get(address)
    }

    /// Decodes a log. Unknown topic0, or data that does not match the ABI, gives an envelope with
    /// `event = ""` and `args = null` carrying the raw topics and data.
    pub fn decode(&self, chain_id: ChainId, log: &RawLog) -> ChainEvent {
        let contract = self.contracts.get(&log.address);
        let signature = log.topics.first().copied().unwrap_or_default();
        let decoded = contract.and_then(|c| c.events.get(&signature)).and_then(|(event, types)| {
            let values = types.as_ref()?.decode_log_parts(log.topics.iter().copied(), &log.data).ok()?;
            Some((event.name.clone(), args_json(event, values)))
        });
        let (event, args) = decoded.unwrap_or((String::new(), Value::Null));
        ChainEvent {
            id: EventId::derive(chain_id, log.block_hash, log.log_index),
            chain_id,
            block_number: log.block_number,
            block_hash: log.block_hash,
            tx_hash: log.tx_hash,
            tx_index: log.tx_index,
            log_index: log.log_index,
            address: log.address,
            contract: contract.map(|c| c.name.clone()).unwrap_or_default(),
            event,
            signature,
            args,
            topics: log.topics.clone(),
            data: log.data.clone(),
            status: EventStatus::Canonical,
            finality: FinalityLevel::Latest,
            tx_from: None,
            schema: ENVELOPE_SCHEMA,
        }
    }
}

/// Reassembles indexed and body values in parameter order, keyed by name (or `arg<i>` when unnamed).
fn args_json(event: &Event, decoded: alloy::dyn_abi::DecodedEvent) -> Value {
    let mut indexed = decoded.indexed.into_iter();
    let mut body = decoded.body.into_iter();
    let mut args = Map::new();
    for (i, input) in event.inputs.iter().enumerate() {
        let value = if input.indexed { indexed.next() } else { body.next() };
        let name = if input.name.is_empty() { format!("arg{i}") } else { input.name.clone() };
        // An indexed dynamic value (string, bytes, array, tuple) is only its hash in the topic.
        let components = if input.indexed { &[][..] } else { &input.components[..] };
        args.insert(name, value.map_or(Value::Null, |v| to_json(&v, components)));
    }
    Value::Object(args)
}

/// ABI value to JSON: integers as decimal strings, bytes as 0x-hex, addresses checksummed, tuples as
/// objects keyed by component names.
pub fn to_json(value: &DynSolValue, components: &[Param]) -> Value {
    match value {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(i, _) => Value::String(i.to_string()),
        DynSolValue::Uint(u, _) => Value::String(u.to_string()),
        DynSolValue::FixedBytes(word, size) => Value::String(format!("0x{}", hex(&word[..*size]))),
        DynSolValue::Address(a) => Value::String(a.to_checksum(None)),
        DynSolValue::Function(f) => Value::String(format!("0x{}", hex(f.as_slice()))),
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", hex(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            Value::Array(items.iter().map(|item| to_json(item, components)).collect())
        }
        DynSolValue::Tuple(items) => {
            let named = components.len() == items.len() && components.iter().all(|c| !c.name.is_empty());
            if named {
                Value::Object(
                    components
                        .iter()
                        .zip(items)
                        .map(|(c, v)| (c.name.clone(), to_json(v, &c.components)))
                        .collect(),
                )
            } else {
                Value::Array(items.iter().map(|v| to_json(v, &[])).collect())
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Bytes, U256, keccak256};

    use super::*;

    fn abi(json: &str) -> JsonAbi {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn decodes_by_topic0_and_keeps_unknown_logs_raw() {
        let a = abi(
            r#"[{"type":"event","name":"ClaimTopicAdded","anonymous":false,"inputs":[{"name":"claimTopic","type":"uint256","indexed":true}]}]"#,
        );
        let b = abi(
            r#"[{"type":"event","name":"ClaimTopicAdded","anonymous":false,"inputs":[{"name":"issuer","type":"address","indexed":true},{"name":"claimTopic","type":"uint256","indexed":false}]}]"#,
        );
        let address = Address::repeat_byte(1);
        let decoder = Decoder::new(vec![ContractAbi::new("gemforce", 1, address, &[a, b])]);
        let issuer = Address::repeat_byte(0xab);
        let log = RawLog {
            address,
            topics: vec![keccak256("ClaimTopicAdded(address,uint256)"), issuer.into_word()],
            data: Bytes::from(U256::from(101).to_be_bytes::<32>().to_vec()),
            block_number: 5,
            block_hash: B256::repeat_byte(5),
            tx_hash: B256::repeat_byte(6),
            tx_index: 0,
            log_index: 3,
        };
        let event = decoder.decode(1, &log);
        assert_eq!(event.event, "ClaimTopicAdded");
        assert_eq!(event.args["issuer"], issuer.to_checksum(None));
        assert_eq!(event.args["claimTopic"], "101");
        assert_eq!(event.contract, "gemforce");

        let unknown = RawLog { topics: vec![B256::repeat_byte(9)], ..log.clone() };
        let event = decoder.decode(1, &unknown);
        assert_eq!((event.event.as_str(), &event.args), ("", &Value::Null));
        assert_eq!(event.topics, unknown.topics, "raw topics are kept");
        assert_eq!(event.id, EventId::derive(1, log.block_hash, 3));
    }
}
