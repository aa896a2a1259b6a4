//! Webhook signatures, both ways.
//!
//! Outgoing (`Gemgate-Signature`): `v1=<hex HMAC-SHA256 of "id.timestamp.body">`, once per configured secret
//! (comma-separated), so a receiver rotating its secret accepts either. [`verify`] is the receiver's side:
//! it rejects a missing or wrong signature and a timestamp outside the tolerance (5 minutes by default).
//!
//! Incoming (`X-Gemforce-Signature`): hex HMAC-SHA256 of the raw body, checked by [`verify_body`].
//! Every comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old (or how far in the future) a signed timestamp may be.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// The `Gemgate-Signature` header value for a message, signed with each secret.
pub fn sign(secrets: &[&[u8]], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let mut m = mac(secret);
            m.update(id.as_bytes());
            m.update(b".");
            m.update(timestamp.to_string().as_bytes());
            m.update(b".");
            m.update(body);
            format!("v1={}", hex::encode(m.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a signed webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no v1 signature in the header")]
    Missing,
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the timestamp is {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    Stale { age_secs: u64, tolerance_secs: u64 },
    #[error("no signature matches")]
    Mismatch,
}

/// Verifies a `Gemgate-Signature` header against any of `secrets` (the receiver's side).
pub fn verify(
    secrets: &[&[u8]],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let signatures: Vec<Vec<u8>> = signature_header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::Missing);
    }
    let ts: u64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let age_secs = now_secs.abs_diff(ts);
    if age_secs > tolerance_secs {
        return Err(VerifyError::Stale { age_secs, tolerance_secs });
    }
    for secret in secrets {
        for signature in &signatures {
            let mut m = mac(secret);
            m.update(id.as_bytes());
            m.update(b".");
            m.update(ts.to_string().as_bytes());
            m.update(b".");
            m.update(body);
            if m.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

/// Verifies a received webhook request now, with the default tolerance, reading `Gemgate-Id`,
/// `Gemgate-Timestamp` and `Gemgate-Signature` through `header` (a lookup in the HTTP framework's headers;
/// names are given as documented). On success, the message id.
pub fn verify_request<'a>(
    secrets: &[&[u8]],
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<&'a str, VerifyError> {
    let id = header("Gemgate-Id").unwrap_or_default();
    let timestamp = header("Gemgate-Timestamp").unwrap_or_default();
    let signature = header("Gemgate-Signature").unwrap_or_default();
    verify(secrets, id, timestamp, signature, body, unix_now(), DEFAULT_TOLERANCE_SECS).map(|()| id)
}

/// Verifies a hex HMAC-SHA256 of the raw body (Gemforce's `X-Gemforce-Signature`), in constant time.
pub fn verify_body(secret: &[u8], signature_hex: &str, body: &[u8]) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim().trim_start_matches("sha256=")) else { return false };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&signature).is_ok()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"0xabc","event":"TradeDealCreated"}"#;

    #[test]
    fn a_signature_verifies_with_either_rotated_secret_and_nothing_else() {
        let header = sign(&[b"new", b"old"], "0xabc", 1_700_000_000, BODY);
        assert_eq!(header.matches("v1=").count(), 2);
        let check = |secret: &[u8], body: &[u8], id: &str, now: u64| {
            verify(&[secret], id, "1700000000", &header, body, now, DEFAULT_TOLERANCE_SECS)
        };
        assert_eq!(check(b"new", BODY, "0xabc", 1_700_000_100), Ok(()));
        assert_eq!(check(b"old", BODY, "0xabc", 1_700_000_100), Ok(()));
        assert_eq!(check(b"wrong", BODY, "0xabc", 1_700_000_100), Err(VerifyError::Mismatch));
        let tampered = br#"{"id":"0xabc","event":"TradeDealCreateD"}"#;
        assert_eq!(check(b"new", tampered, "0xabc", 1_700_000_100), Err(VerifyError::Mismatch));
        assert_eq!(
            check(b"new", BODY, "0xabd", 1_700_000_100),
            Err(VerifyError::Mismatch),
            "the id is signed"
        );
        assert_eq!(
            check(b"new", BODY, "0xabc", 1_700_000_301),
            Err(VerifyError::Stale { age_secs: 301, tolerance_secs: 300 })
        );
        assert_eq!(
            verify(&[b"new"], "0xabc", "1700000000", "v0=00", BODY, 1_700_000_000, 300),
            Err(VerifyError::Missing)
        );
    }

    #[test]
    fn gemforce_body_signatures_are_checked_in_full() {
        let mut m = mac(b"gemforce-secret");
        m.update(BODY);
        let good = hex::encode(m.finalize().into_bytes());
        assert!(verify_body(b"gemforce-secret", &good, BODY));
        assert!(!verify_body(b"other", &good, BODY));
        assert!(!verify_body(b"gemforce-secret", &good[..10], BODY));
        assert!(!verify_body(b"gemforce-secret", "not hex", BODY));
    }
}
