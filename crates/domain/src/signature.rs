//! Webhook signatures, both ways.
//!
//! Outgoing, two schemes, both HMAC-SHA256 of `id.timestamp.body` once per configured secret, so a receiver
//! rotating its secret accepts either:
//! - [Standard Webhooks](https://www.standardwebhooks.com) (the default): `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64>` (space-separated), keyed by the bytes of a `whsec_<base64>` secret
//!   ([`standard_key`]). The published Standard Webhooks libraries verify these; so does [`verify_standard`].
//! - gemgate's own (`signature = "gemgate"`): `Gemgate-Id`, `Gemgate-Timestamp`,
//!   `Gemgate-Signature: v1=<hex>` (comma-separated), keyed by the secret's text; [`verify`].
//!
//! The receiver's side rejects a missing or wrong signature and a timestamp outside the tolerance (5 minutes
//! by default); [`verify_webhook`] takes either scheme.
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

/// The MAC over `id.timestamp.body`, what both schemes sign.
fn content_mac(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut m = mac(secret);
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Gemgate-Signature` header value for a message, signed with each secret.
pub fn sign(secrets: &[&[u8]], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            format!("v1={}", hex::encode(content_mac(secret, id, timestamp, body).finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The prefix of a Standard Webhooks secret.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";
/// The fewest key bytes a Standard Webhooks secret may hold (the specification recommends 24 to 64).
pub const STANDARD_MIN_KEY_BYTES: usize = 24;

/// Why a Standard Webhooks secret is refused (the message never contains the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a Standard Webhooks secret starts with whsec_")]
    Prefix,
    #[error("the text after whsec_ is not base64")]
    Base64,
    #[error("the secret holds {0} bytes; at least 24 are required")]
    Short(usize),
}

/// The HMAC key of a `whsec_<base64>` secret.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    use base64::Engine as _;
    let encoded = secret.trim().strip_prefix(STANDARD_SECRET_PREFIX).ok_or(SecretError::Prefix)?;
    let key = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
    if key.len() < STANDARD_MIN_KEY_BYTES {
        return Err(SecretError::Short(key.len()));
    }
    Ok(key)
}

/// The `webhook-signature` header value: `v1,<base64 MAC>` per key, space-separated.
pub fn sign_standard(keys: &[&[u8]], id: &str, timestamp: u64, body: &[u8]) -> String {
    use base64::Engine as _;
    keys.iter()
        .map(|key| {
            let tag = content_mac(key, id, timestamp, body).finalize().into_bytes();
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    check(secrets, &signatures, id, timestamp, body, (now_secs, tolerance_secs))
}

/// Verifies a `webhook-signature` header (Standard Webhooks) against any of `keys` (from [`standard_key`]).
pub fn verify_standard(
    keys: &[&[u8]],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    use base64::Engine as _;
    let signatures: Vec<Vec<u8>> = signature_header
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .collect();
    check(keys, &signatures, id, timestamp, body, (now_secs, tolerance_secs))
}

/// What both schemes check once the header is parsed: a signature given, a fresh timestamp, and a
/// signature that is the MAC of the content under one of the keys.
fn check(
    keys: &[&[u8]],
    signatures: &[Vec<u8>],
    id: &str,
    timestamp: &str,
    body: &[u8],
    (now_secs, tolerance_secs): (u64, u64),
) -> Result<(), VerifyError> {
    if signatures.is_empty() {
        return Err(VerifyError::Missing);
    }
    let ts = fresh_timestamp(timestamp, now_secs, tolerance_secs)?;
    matches_any(keys, signatures, id, ts, body)
}

fn fresh_timestamp(timestamp: &str, now_secs: u64, tolerance_secs: u64) -> Result<u64, VerifyError> {
    let ts: u64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let age_secs = now_secs.abs_diff(ts);
    if age_secs > tolerance_secs {
        return Err(VerifyError::Stale { age_secs, tolerance_secs });
    }
    Ok(ts)
}

/// Whether any signature is the MAC of the content under any key, each compared in constant time.
fn matches_any(
    keys: &[&[u8]],
    signatures: &[Vec<u8>],
    id: &str,
    ts: u64,
    body: &[u8],
) -> Result<(), VerifyError> {
    for key in keys {
        for signature in signatures {
            if content_mac(key, id, ts, body).verify_slice(signature).is_ok() {
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

/// Verifies a received webhook of either scheme now, with the default tolerance: Standard Webhooks when the
/// request has a `webhook-signature` header (each secret read as `whsec_<base64>`; others are skipped),
/// else gemgate's own headers (each secret's text is the key). On success, the message id.
pub fn verify_webhook<'a>(
    secrets: &[&str],
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<&'a str, VerifyError> {
    let Some(signature) = header("webhook-signature") else {
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        return verify_request(&keys, header, body);
    };
    let id = header("webhook-id").unwrap_or_default();
    let timestamp = header("webhook-timestamp").unwrap_or_default();
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| standard_key(s).ok()).collect();
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    verify_standard(&keys, id, timestamp, signature, body, unix_now(), DEFAULT_TOLERANCE_SECS).map(|()| id)
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

    /// The example of the Standard Webhooks specification's test vectors: this secret, id, timestamp and
    /// body sign to this signature in every published library.
    #[test]
    fn standard_signatures_match_the_specification_example() {
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let header = sign_standard(&[&key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let check = |header: &str, body: &[u8], now: u64| {
            verify_standard(&[&key], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", header, body, now, 300)
        };
        assert_eq!(check(&header, body, 1_614_265_400), Ok(()));
        assert_eq!(check(&format!("v1,AAAA {header}"), body, 1_614_265_400), Ok(()), "any listed one");
        assert_eq!(check(&header, br#"{"test": 2432232315}"#, 1_614_265_400), Err(VerifyError::Mismatch));
        assert_eq!(check("v1a,abc", body, 1_614_265_400), Err(VerifyError::Missing));
        assert!(matches!(check(&header, body, 1_614_266_000), Err(VerifyError::Stale { .. })));
    }

    #[test]
    fn standard_secrets_need_the_prefix_base64_and_24_bytes() {
        assert_eq!(standard_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretError::Prefix));
        assert_eq!(standard_key("whsec_not base64!"), Err(SecretError::Base64));
        assert_eq!(standard_key("whsec_c2hvcnQ="), Err(SecretError::Short(5)));
        assert_eq!(standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()), Ok(24));
    }

    #[test]
    fn verify_webhook_takes_either_scheme_by_its_headers() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let now = unix_now();
        let key = standard_key(secret).unwrap();
        let standard = sign_standard(&[&key], "m1", now, BODY);
        let ts = now.to_string();
        let headers = |name: &str| match name {
            "webhook-id" => Some("m1"),
            "webhook-timestamp" => Some(ts.as_str()),
            "webhook-signature" => Some(standard.as_str()),
            _ => None,
        };
        assert_eq!(verify_webhook(&["other", secret], headers, BODY), Ok("m1"));
        assert_eq!(verify_webhook(&["other"], headers, BODY), Err(VerifyError::Mismatch));
        let own = sign(&[secret.as_bytes()], "m2", now, BODY);
        let headers = |name: &str| match name {
            "Gemgate-Id" => Some("m2"),
            "Gemgate-Timestamp" => Some(ts.as_str()),
            "Gemgate-Signature" => Some(own.as_str()),
            _ => None,
        };
        assert_eq!(verify_webhook(&[secret], headers, BODY), Ok("m2"));
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
