//! Raw transaction decoding (`POST /v1/transactions/raw`) on hostile bytes, property-based on stable Rust:
//! arbitrary bytes behind every type prefix, and real signed transactions (legacy and EIP-1559) with bytes
//! flipped, cut, spliced or appended. Nothing panics; whatever decodes is exactly the bytes given (its hash
//! is their keccak), and a changed signature never recovers to the original signer.

use std::sync::OnceLock;

use alloy::primitives::{Address, Bytes, U256, keccak256};
use gemgate_txm::draft::{Draft, Price, Signing, decode};
use gemgate_txm::fees::Fees;
use gemgate_txm::signers::LocalSigner;
use proptest::prelude::*;

const KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// Two signed transactions (EIP-1559 and legacy) and their signer.
fn signed() -> &'static (Vec<Vec<u8>>, Address) {
    static SIGNED: OnceLock<(Vec<Vec<u8>>, Address)> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let signer = LocalSigner::from_hex("fuzz", KEY).unwrap();
        let prices = [
            Price::Eip1559(Fees { max_fee_per_gas: 30_000_000_000, max_priority_fee_per_gas: 1_000_000_000 }),
            Price::Legacy { gas_price: 20_000_000_000 },
        ];
        let raws = prices
            .into_iter()
            .map(|price| {
                let draft = Draft {
                    chain_id: 31337,
                    nonce: 3,
                    to: Some(Address::repeat_byte(0x22)),
                    value: U256::from(12_345u64),
                    data: Bytes::from_static(&[0xa9, 0x05, 0x9c, 0xbb, 0, 1, 2, 3]),
                    gas_limit: 60_000,
                    price,
                };
                match runtime.block_on(draft.sign(&signer, "fuzz", "k")).unwrap() {
                    Signing::Signed(signed) => signed.raw.to_vec(),
                    other => panic!("a local key signs at once: {other:?}"),
                }
            })
            .collect();
        (raws, gemgate_domain::ports::Signer::address(&signer))
    })
}

fn check(raw: &[u8]) {
    if let Ok(decoded) = decode(raw) {
        assert_eq!(decoded.hash, keccak256(raw), "a decoded transaction is exactly these bytes");
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Flip { at: prop::sample::Index, mask: u8 },
    Cut { at: prop::sample::Index },
    Append(Vec<u8>),
    Splice { at: prop::sample::Index, bytes: Vec<u8> },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, mask)| Edit::Flip { at, mask }),
        any::<prop::sample::Index>().prop_map(|at| Edit::Cut { at }),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(Edit::Append),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Edit::Splice { at, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(prefix in 0u8..8, list in any::<bool>(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut raw = Vec::with_capacity(body.len() + 2);
        if prefix < 5 {
            raw.push(prefix);
        }
        if list {
            raw.push(0xf8);
            raw.push(body.len().min(255) as u8);
        }
        raw.extend(body);
        check(&raw);
    }

    #[test]
    fn edited_signed_transactions_never_panic(which in 0usize..2, edits in prop::collection::vec(edit(), 1..4)) {
        let (raws, signer) = signed();
        let original = &raws[which];
        let mut raw = original.clone();
        for edit in edits {
            match edit {
                Edit::Flip { at, mask } if !raw.is_empty() => {
                    let i = at.index(raw.len());
                    raw[i] ^= mask;
                }
                Edit::Cut { at } if !raw.is_empty() => raw.truncate(at.index(raw.len())),
                Edit::Append(bytes) => raw.extend(bytes),
                Edit::Splice { at, bytes } => {
                    let i = if raw.is_empty() { 0 } else { at.index(raw.len()) };
                    raw.splice(i..i, bytes);
                }
                _ => {}
            }
        }
        check(&raw);
        // The signature is the last 65-odd bytes: a change only there must not keep the signer.
        let only_signature = raw != *original
            && raw.len() == original.len()
            && raw[..raw.len() - 64] == original[..original.len() - 64];
        if only_signature && let Ok(decoded) = decode(&raw) {
            prop_assert_ne!(decoded.sender, *signer);
        }
    }
}

#[test]
fn the_untouched_transactions_decode_to_their_signer() {
    let (raws, signer) = signed();
    for raw in raws {
        let decoded = decode(raw).unwrap();
        assert_eq!((decoded.sender, decoded.nonce, decoded.chain_id), (*signer, 3, Some(31337)));
    }
}
