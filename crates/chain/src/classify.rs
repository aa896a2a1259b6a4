//! Reading RPC errors. Providers say "your log range is too large" in a dozen ways, some with a hint of
//! what would work; nodes say "I do not have that block" in a few more. Misreading either stalls an
//! indexer (a permanent error retried forever) or loses data (a lagging node's empty answer trusted), so
//! every text here comes from a real node or provider and has a fixture test.

use alloy::transports::{RpcError, TransportErrorKind};
use gemgate_domain::{ChainError, RangeHint};

/// Substrings (lowercase) of errors that mean "ask for fewer blocks or fewer logs".
const RANGE_TOO_LARGE: &[&str] = &[
    "query returned more than",
    "log response size exceeded",
    "response size exceeded",
    "response size should not",
    "block range is too wide",
    "block range too large",
    "block range is too large",
    "range too large",
    "exceed maximum block range",
    "exceeds maximum block range",
    "max block range",
    "maximum block range",
    "limited to a",
    "block range limit",
    "eth_getlogs is limited",
    "query timeout exceeded",
    "too many logs",
    "logs matched by query exceeds",
    "exceeds the range",
    "range exceeds",
    "result set too large",
    "requested too many blocks",
    "query exceeds max results",
    "ranges over",
];

/// Substrings of errors that mean "this node does not have that block (yet)".
const BLOCK_UNAVAILABLE: &[&str] = &[
    "unknown block",
    "header not found",
    "block not found",
    "missing trie node",
    "cannot find block",
    // anvil: "BlockOutOfRangeError: block height is 226 but requested was 240"
    "blockoutofrange",
    "block height is",
    // geth's eth_getLogs: "block range extends beyond current head block"
    "beyond current head",
];

/// Substrings of rate-limit errors.
const RATE_LIMITED: &[&str] = &[
    "rate limit",
    "too many requests",
    "exceeded its compute units",
    "request limit",
    "capacity exceeded",
    "throttled",
];

/// Substrings of errors a retry on the same or another node can fix.
const TRANSIENT: &[&str] =
    &["timeout", "timed out", "internal error", "temporarily", "try again", "connection", "unavailable"];

/// Turns an alloy transport error into the domain's typed error. `range` is the log range being fetched,
/// if the call was `eth_getLogs` over a range.
pub fn classify(
    endpoint: &str,
    error: &RpcError<TransportErrorKind>,
    range: Option<(u64, u64)>,
) -> ChainError {
    let endpoint = endpoint.to_string();
    match error {
        RpcError::ErrorResp(payload) => {
            let message = payload.message.to_string();
            let lower = message.to_lowercase();
            if let Some((from, to)) = range
                && RANGE_TOO_LARGE.iter().any(|s| lower.contains(s))
            {
                return ChainError::RangeTooLarge { from, to, hint: range_hint(&message, from, to), message };
            }
            if BLOCK_UNAVAILABLE.iter().any(|s| lower.contains(s)) {
                return ChainError::BlockUnavailable { endpoint, number: range.map_or(0, |r| r.1) };
            }
            if payload.code == 429 || payload.code == -32005 || RATE_LIMITED.iter().any(|s| lower.contains(s))
            {
                return ChainError::RateLimited { endpoint, message };
            }
            if payload.code == -32603 || TRANSIENT.iter().any(|s| lower.contains(s)) {
                return ChainError::Transport { endpoint, message };
            }
            ChainError::Rpc { endpoint, code: payload.code, message }
        }
        RpcError::Transport(kind) => {
            let message = kind.to_string();
            let status = match kind {
                TransportErrorKind::HttpError(http) => Some(http.status),
                TransportErrorKind::HttpErrorWithRetryAfter { error, .. } => Some(error.status),
                _ => None,
            };
            match status {
                Some(429) => ChainError::RateLimited { endpoint, message },
                // Other client errors (401, 403, 404) are configuration problems retrying will not fix.
                Some(status) if (400..500).contains(&status) && status != 408 => {
                    ChainError::Rpc { endpoint, code: i64::from(status), message }
                }
                _ => ChainError::Transport { endpoint, message },
            }
        }
        RpcError::NullResp => ChainError::Transport { endpoint, message: "null response".into() },
        RpcError::DeserError { err, .. } => {
            // A load balancer's HTML error page or a truncated body: another node may answer properly.
            ChainError::InvalidResponse { endpoint, message: err.to_string() }
        }
        other => ChainError::InvalidResponse { endpoint, message: other.to_string() },
    }
}

/// Reads a provider's suggestion out of a "range too large" message. A suggested range is used only if
/// it starts where the refused one started and is strictly smaller; otherwise it is not a usable hint
/// (some providers echo the refused range back, which would loop forever).
pub fn range_hint(message: &str, from: u64, to: u64) -> Option<RangeHint> {
    if let Some((a, b)) = bracketed_range(message) {
        return (a == from && b >= a && b < to).then_some(RangeHint::Range(a, b));
    }
    let lower = message.to_lowercase();
    const SPAN_PREFIXES: &[&str] = &[
        "limited to a ",
        "limited to ",
        "maximum block range: ",
        "maximum block range of ",
        "max block range: ",
        "max block range of ",
        "max block range ",
        "block range limit (",
        "block range limit of ",
        "up to a ",
        "range should not exceed ",
        "range exceeds maximum of ",
    ];
    for prefix in SPAN_PREFIXES {
        if let Some(position) = lower.find(prefix)
            && let Some(span) = leading_number(&lower[position + prefix.len()..])
            && span > 0
            && span < to.saturating_sub(from) + 1
        {
            return Some(RangeHint::MaxSpan(span));
        }
    }
    None
}

/// `[0x1a, 0x2b]` (hex, as Alchemy and Infura write it) anywhere in the text.
fn bracketed_range(message: &str) -> Option<(u64, u64)> {
    let start = message.find('[')?;
    let end = start + message[start..].find(']')?;
    let (a, b) = message[start + 1..end].split_once(',')?;
    let parse = |s: &str| {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    };
    Some((parse(a)?, parse(b)?))
}

/// A number at the start of `text`: digits with optional thousands separators and a `k` suffix.
fn leading_number(text: &str) -> Option<u64> {
    let mut digits = String::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if c != ',' && c != '_' {
            break;
        }
        chars.next();
    }
    let value: u64 = digits.parse().ok()?;
    match chars.peek() {
        Some('k') => Some(value * 1_000),
        _ => Some(value),
    }
}

#[cfg(test)]
mod tests {
    use alloy::rpc::json_rpc::ErrorPayload;
    use alloy::transports::TransportErrorKind;

    use super::*;

    fn rpc_error(code: i64, message: &str) -> RpcError<TransportErrorKind> {
        RpcError::ErrorResp(ErrorPayload { code, message: message.to_string().into(), data: None })
    }

    /// Real texts: (who says it, the message, what it must mean).
    #[test]
    fn range_errors_from_real_providers_are_recognised_with_their_hints() {
        let cases: &[(&str, &str, Option<RangeHint>)] = &[
            (
                "Alchemy",
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x0, 0x1a5b]",
                Some(RangeHint::Range(0, 0x1a5b)),
            ),
            (
                "Infura",
                "query returned more than 10000 results. Try with this block range [0x0, 0x4E1F].",
                Some(RangeHint::Range(0, 0x4e1f)),
            ),
            ("QuickNode", "eth_getLogs is limited to a 10,000 range", Some(RangeHint::MaxSpan(10_000))),
            (
                "QuickNode (newer)",
                "eth_getLogs and eth_newFilter are limited to a 10000 blocks range",
                Some(RangeHint::MaxSpan(10_000)),
            ),
            ("geth / BSC", "exceed maximum block range: 5000", Some(RangeHint::MaxSpan(5_000))),
            ("Ankr", "block range is too wide", None),
            ("Erigon", "query returned more than 10000 results", None),
            (
                "Chainstack",
                "Block range limit exceeded. Max block range 100 for this method",
                Some(RangeHint::MaxSpan(100)),
            ),
            ("dRPC", "ranges over 10000 blocks are not supported on freetier", None),
            ("Base public", "block range too large", None),
            ("Nethermind", "Too many logs requested, max logs per request 10000", None),
            ("Cloudflare", "Query timeout exceeded. Consider reducing your block range.", None),
        ];
        for (who, message, hint) in cases {
            let from = 0;
            let to = 100_000;
            match classify("rpc", &rpc_error(-32005, message), Some((from, to))) {
                ChainError::RangeTooLarge { hint: got, .. } => assert_eq!(got, *hint, "{who}: {message}"),
                other => panic!("{who}: {message:?} read as {other:?}"),
            }
        }
    }

    #[test]
    fn a_hint_that_repeats_the_refused_range_is_ignored() {
        assert_eq!(range_hint("this block range should work: [0x0, 0x64]", 0, 100), None, "same range");
        assert_eq!(range_hint("try with this block range [0x5, 0x10]", 0, 100), None, "starts elsewhere");
        assert_eq!(
            range_hint("try with this block range [0x0, 0x10]", 0, 100),
            Some(RangeHint::Range(0, 16))
        );
        assert_eq!(
            range_hint("limited to a 10,000 range", 0, 5_000),
            None,
            "the range is already within the span"
        );
    }

    #[test]
    fn node_errors_are_typed_with_retryability() {
        let lagging = classify("rpc", &rpc_error(-32000, "unknown block"), None);
        assert!(matches!(lagging, ChainError::BlockUnavailable { .. }) && lagging.is_retryable());
        let geth_header = classify("rpc", &rpc_error(-32000, "header not found"), None);
        assert!(matches!(geth_header, ChainError::BlockUnavailable { .. }));
        // A node behind the range asked for (found by the soak: it halted the indexer as a permanent error).
        for text in [
            "BlockOutOfRangeError: block height is 226 but requested was 240",
            "block range extends beyond current head block",
        ] {
            let behind = classify("rpc", &rpc_error(-32602, text), Some((230, 240)));
            assert!(
                matches!(behind, ChainError::BlockUnavailable { number: 240, .. }) && behind.is_retryable(),
                "{text}: {behind:?}"
            );
        }
        let limited = classify("rpc", &rpc_error(429, "Too Many Requests"), None);
        assert!(matches!(limited, ChainError::RateLimited { .. }) && limited.is_retryable());
        let alchemy_cu = classify(
            "rpc",
            &rpc_error(429, "Your app has exceeded its compute units per second capacity."),
            None,
        );
        assert!(alchemy_cu.is_retryable());
        let bad_params =
            classify("rpc", &rpc_error(-32602, "invalid argument 0: hex string without 0x prefix"), None);
        assert!(matches!(bad_params, ChainError::Rpc { .. }) && !bad_params.is_retryable());
        let internal = classify("rpc", &rpc_error(-32603, "internal error"), None);
        assert!(internal.is_retryable());
        let method =
            classify("rpc", &rpc_error(-32601, "the method eth_foo does not exist/is not available"), None);
        assert!(
            !method.is_retryable(),
            "a missing method is permanent even though the text says 'not available'"
        );
    }

    #[test]
    fn http_statuses_are_typed() {
        use alloy::transports::HttpError;
        let http = |status: u16| {
            RpcError::Transport(TransportErrorKind::HttpError(HttpError { status, body: String::new() }))
        };
        assert!(matches!(classify("rpc", &http(429), None), ChainError::RateLimited { .. }));
        assert!(classify("rpc", &http(503), None).is_retryable());
        assert!(!classify("rpc", &http(401), None).is_retryable(), "a bad API key is not transient");
    }
}
