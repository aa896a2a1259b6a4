//! Webhook intake on hostile input, property-based on stable Rust: arbitrary ids, timestamps, signature
//! headers and bodies against both schemes and the inbound body signature. Nothing panics; nothing verifies
//! unless it carries the MAC of exactly this id, timestamp and body under one of the keys; a signed message
//! changed in any part, or replayed outside the tolerance, is refused.

use gemgate_domain::signature::{
    DEFAULT_TOLERANCE_SECS, VerifyError, sign, sign_standard, verify, verify_body, verify_standard,
};
use proptest::prelude::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;

fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "(v1[,=][A-Za-z0-9+/=]{0,90} ?){0,4}",
        Just(String::new()),
        Just("v1,".to_string()),
        Just("v1=".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_verify(
        id in ".{0,40}",
        timestamp in prop_oneof![".{0,20}", (NOW - 400..NOW + 400).prop_map(|t| t.to_string())],
        header in header_text(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        prop_assert!(verify(&[KEY], &id, &timestamp, &header, &body, NOW, DEFAULT_TOLERANCE_SECS).is_err());
        prop_assert!(verify_standard(&[KEY], &id, &timestamp, &header, &body, NOW, DEFAULT_TOLERANCE_SECS).is_err());
        prop_assert!(!verify_body(KEY, &header, &body));
    }

    #[test]
    fn a_signed_message_changed_anywhere_is_refused(
        id in "[a-z0-9:]{1,30}",
        age in 0u64..300,
        body in prop::collection::vec(any::<u8>(), 1..200),
        flip in any::<prop::sample::Index>(),
        part in 0u8..3,
    ) {
        let ts = NOW - age;
        for standard in [true, false] {
            let header = if standard { sign_standard(&[KEY], &id, ts, &body) } else { sign(&[KEY], &id, ts, &body) };
            let check = |id: &str, ts: &str, body: &[u8]| {
                if standard {
                    verify_standard(&[KEY], id, ts, &header, body, NOW, DEFAULT_TOLERANCE_SECS)
                } else {
                    verify(&[KEY], id, ts, &header, body, NOW, DEFAULT_TOLERANCE_SECS)
                }
            };
            prop_assert_eq!(check(&id, &ts.to_string(), &body), Ok(()));
            let result = match part {
                0 => {
                    let mut changed = body.clone();
                    changed[flip.index(body.len())] ^= 0x01;
                    check(&id, &ts.to_string(), &changed)
                }
                1 => check(&format!("{id}x"), &ts.to_string(), &body),
                _ => check(&id, &(ts - 1).to_string(), &body),
            };
            prop_assert_eq!(result, Err(VerifyError::Mismatch));
            // The same message replayed later than the tolerance.
            let replayed = if standard {
                verify_standard(&[KEY], &id, &ts.to_string(), &header, &body, ts + 301, DEFAULT_TOLERANCE_SECS)
            } else {
                verify(&[KEY], &id, &ts.to_string(), &header, &body, ts + 301, DEFAULT_TOLERANCE_SECS)
            };
            let stale = matches!(replayed, Err(VerifyError::Stale { .. }));
            prop_assert!(stale, "{:?}", replayed);
        }
    }
}
