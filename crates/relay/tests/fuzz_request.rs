//! EIP-712 meta-request checks on hostile input, property-based on stable Rust: requests with arbitrary
//! fields and signature bytes, a user's real signature with one byte changed, its high-`s` twin, and
//! arbitrary `eip712Domain()` answers. Nothing panics; only the user's own signature over exactly this
//! request and domain is accepted.

use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, Bytes, U256, aliases::U48};
use gemgate_relay::{ForwardRequest, ForwarderDomain, RelayError, SignedRequest};
use proptest::prelude::*;

const KEY: &str = "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

fn domain() -> ForwarderDomain {
    ForwarderDomain {
        name: "GemforceForwarder".into(),
        version: "1".into(),
        chain_id: 31337,
        verifying_contract: Address::repeat_byte(0xf0),
    }
}

fn request(
    from: Address,
    to: [u8; 20],
    value: u64,
    gas: u64,
    nonce: u64,
    deadline: u64,
    data: Vec<u8>,
) -> ForwardRequest {
    ForwardRequest {
        from,
        to: Address::from(to),
        value: U256::from(value),
        gas: U256::from(gas),
        nonce: U256::from(nonce),
        deadline: U48::from(deadline & 0xffff_ffff_ffff),
        data: Bytes::from(data),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_signatures_never_verify(
        from in any::<[u8; 20]>(),
        to in any::<[u8; 20]>(),
        (value, gas, nonce, deadline) in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        data in prop::collection::vec(any::<u8>(), 0..200),
        signature in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..130),
            (prop::collection::vec(any::<u8>(), 64..=64), prop_oneof![Just(27u8), Just(28), Just(0), Just(1), any::<u8>()])
                .prop_map(|(mut rs, v)| { rs.push(v); rs }),
        ],
    ) {
        let signed = SignedRequest {
            request: request(Address::from(from), to, value, gas, nonce, deadline, data),
            signature: Bytes::from(signature),
        };
        let digest = signed.digest(&domain());
        prop_assert!(signed.verified_signature(&digest).is_err());
        let _ = signed.gas_limit(&[0u8; 100]);
    }

    #[test]
    fn a_real_signature_changed_anywhere_is_refused(
        to in any::<[u8; 20]>(),
        (value, gas, nonce) in (any::<u32>(), 21_000u64..5_000_000, any::<u16>()),
        data in prop::collection::vec(any::<u8>(), 0..100),
        flip in 0usize..65,
        mask in 1u8..=255,
        field in 0u8..4,
    ) {
        let user: PrivateKeySigner = KEY.parse().unwrap();
        let mut signed = SignedRequest {
            request: request(user.address(), to, value.into(), gas, nonce.into(), 1_900_000_000, data),
            signature: Bytes::new(),
        };
        let digest = signed.digest(&domain());
        let signature = user.sign_hash_sync(&digest).unwrap();
        signed.signature = Bytes::from(signature.as_bytes().to_vec());
        prop_assert!(signed.verified_signature(&digest).is_ok());

        // One byte of the signature changed. (v written as 0/1 instead of 27/28 is the same signature.)
        let mut bytes = signed.signature.to_vec();
        bytes[flip] ^= mask;
        let same_v = flip == 64 && bytes[64] < 2 && bytes[64] + 27 == signed.signature[64];
        let tampered = SignedRequest { request: signed.request.clone(), signature: Bytes::from(bytes) };
        prop_assert_eq!(tampered.verified_signature(&digest).is_ok(), same_v);

        // The same signature over a changed request or another domain.
        let mut other = signed.clone();
        match field {
            0 => other.request.value += U256::from(1),
            1 => other.request.nonce += U256::from(1),
            2 => other.request.to = Address::repeat_byte(0x99),
            _ => other.request.deadline = U48::from(1u64),
        }
        prop_assert!(other.verified_signature(&other.digest(&domain())).is_err());
        let elsewhere = ForwarderDomain { chain_id: 1, ..domain() };
        prop_assert!(signed.verified_signature(&signed.digest(&elsewhere)).is_err());

        // The malleable twin (n - s, flipped parity) recovers to the same user but is refused.
        let n = U256::from_str_radix("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16).unwrap();
        let mut twin = signed.signature.to_vec();
        let s = U256::from_be_slice(&twin[32..64]);
        twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
        twin[64] = if twin[64] == 27 { 28 } else { 27 };
        let twin = SignedRequest { request: signed.request, signature: Bytes::from(twin) };
        prop_assert!(matches!(twin.verified_signature(&digest), Err(RelayError::HighS)));
    }

    #[test]
    fn arbitrary_domain_answers_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = ForwarderDomain::decode(&data);
    }
}

#[test]
fn the_digest_depends_on_every_field() {
    let base = request(Address::repeat_byte(1), [2; 20], 3, 4, 5, 6, vec![7]);
    let digest =
        |r: &ForwardRequest| SignedRequest { request: r.clone(), signature: Bytes::new() }.digest(&domain());
    let mut seen = std::collections::HashSet::<B256>::from([digest(&base)]);
    for changed in [
        request(Address::repeat_byte(9), [2; 20], 3, 4, 5, 6, vec![7]),
        request(Address::repeat_byte(1), [9; 20], 3, 4, 5, 6, vec![7]),
        request(Address::repeat_byte(1), [2; 20], 9, 4, 5, 6, vec![7]),
        request(Address::repeat_byte(1), [2; 20], 3, 9, 5, 6, vec![7]),
        request(Address::repeat_byte(1), [2; 20], 3, 4, 9, 6, vec![7]),
        request(Address::repeat_byte(1), [2; 20], 3, 4, 5, 9, vec![7]),
        request(Address::repeat_byte(1), [2; 20], 3, 4, 5, 6, vec![9]),
    ] {
        assert!(seen.insert(digest(&changed)), "a changed field changes the digest");
    }
}
