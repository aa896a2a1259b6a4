//! The ABI decoder on hostile logs (property-based, on stable Rust): every Gemforce event, an ERC-20 and the
//! log spammer's, given arbitrary topics and data, or a real event's shape with its words mutated, or
//! dynamic-type lengths near 2^256. Nothing panics, nothing allocates by what the data claims; a log either
//! decodes to its event with named arguments or is kept raw (`event` empty, `args` null), never dropped, and
//! the envelope keeps the log's own topics and data.

use alloy::json_abi::JsonAbi;
use alloy_primitives::{Address, B256, Bytes};
use gemgate_domain::ports::RawLog;
use gemgate_projections::{ContractAbi, Decoder};
use proptest::prelude::*;

// The ERC-20 first: its Transfer and the ERC-721's share a topic0, and the first definition wins.
const ARTIFACTS: &[&str] = &[
    "SampleERC20",
    "CarbonCreditFacet",
    "ClaimTopicsRegistryFacet",
    "DiamondCutFacet",
    "ERC721Facet",
    "GemforceMinterFacet",
    "IdentityFactory",
    "IdentityRegistryFacet",
    "MarketplaceFacet",
    "OwnershipFacet",
    "TradeDealFacet",
    "TrustedIssuersRegistryFacet",
    "LogSpammer",
];

fn abis() -> Vec<JsonAbi> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/artifacts");
    ARTIFACTS
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            let artifact: serde_json::Value = serde_json::from_str(&text).unwrap();
            serde_json::from_value(artifact["abi"].clone()).unwrap()
        })
        .collect()
}

const ADDRESS: Address = Address::repeat_byte(0x42);

fn decoder() -> (Decoder, Vec<B256>) {
    let abis = abis();
    let contract = ContractAbi::new("gemforce", 31337, ADDRESS, &abis);
    let mut selectors: Vec<B256> = contract.events().map(|e| e.selector()).collect();
    selectors.sort();
    (Decoder::new(vec![contract]), selectors)
}

fn log(topics: Vec<B256>, data: Vec<u8>) -> RawLog {
    RawLog {
        address: ADDRESS,
        topics,
        data: Bytes::from(data),
        block_number: 7,
        block_hash: B256::repeat_byte(7),
        tx_hash: B256::repeat_byte(8),
        tx_index: 0,
        log_index: 3,
    }
}

/// A 32-byte word: often small, zero, all ones, or a length/offset near the data's size.
fn word() -> impl Strategy<Value = [u8; 32]> {
    prop_oneof![
        any::<[u8; 32]>(),
        (0u64..4096).prop_map(|n| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&n.to_be_bytes());
            w
        }),
        Just([0xff; 32]),
        Just([0u8; 32]),
        any::<u64>().prop_map(|n| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&n.to_be_bytes());
            w
        }),
    ]
}

fn check(decoder: &Decoder, raw: &RawLog) {
    let event = decoder.decode(31337, raw);
    assert_eq!(event.topics, raw.topics, "the log's own topics are kept");
    assert_eq!(event.data, raw.data, "the log's own data is kept");
    assert_eq!(event.contract, "gemforce");
    if event.event.is_empty() {
        assert!(event.args.is_null(), "an undecoded log has no args: {}", event.args);
    } else {
        assert!(event.args.is_object(), "decoded args are keyed by name: {}", event.args);
    }
    // The envelope always serializes (what every sink sends).
    serde_json::to_vec(&event).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_topics_and_data_never_panic(
        pick in any::<prop::sample::Index>(),
        known in any::<bool>(),
        topics in prop::collection::vec(any::<[u8; 32]>(), 0..5),
        data in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let (decoder, selectors) = decoder();
        let mut topics: Vec<B256> = topics.into_iter().map(B256::from).collect();
        if known && !topics.is_empty() {
            topics[0] = selectors[pick.index(selectors.len())];
        }
        check(&decoder, &log(topics, data));
    }

    #[test]
    fn known_events_with_hostile_words_never_panic_or_overallocate(
        pick in any::<prop::sample::Index>(),
        indexed in prop::collection::vec(any::<[u8; 32]>(), 0..4),
        words in prop::collection::vec(word(), 0..24),
        tail in prop::collection::vec(any::<u8>(), 0..31),
    ) {
        let (decoder, selectors) = decoder();
        let mut topics = vec![selectors[pick.index(selectors.len())]];
        topics.extend(indexed.into_iter().map(B256::from));
        let mut data: Vec<u8> = words.concat();
        data.extend(tail);
        check(&decoder, &log(topics, data));
    }
}

#[test]
fn a_real_transfer_decodes_and_a_truncated_one_is_kept_raw() {
    let (decoder, _) = decoder();
    let transfer = alloy_primitives::keccak256("Transfer(address,address,uint256)");
    let from = B256::left_padding_from(&[1; 20]);
    let to = B256::left_padding_from(&[2; 20]);
    let amount = B256::left_padding_from(&1_000u64.to_be_bytes());
    let good = decoder.decode(31337, &log(vec![transfer, from, to], amount.to_vec()));
    assert_eq!(good.event, "Transfer");
    let args = good.args.as_object().unwrap();
    assert!(args.values().any(|v| v == "1000"), "{}", good.args);
    let cut = decoder.decode(31337, &log(vec![transfer, from, to], amount[..16].to_vec()));
    assert_eq!((cut.event.as_str(), cut.args.is_null()), ("", true), "{:?}", cut.args);
}
