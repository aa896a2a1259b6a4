//! Reading the errors nodes give when they refuse a transaction. geth, reth, erigon, Nethermind, Besu and
//! anvil say the same things in different words (and Nethermind in two generations of words); misreading
//! one is how relayers jam: a "nonce too low" taken for a transient error re-signs over and over, an
//! "already known" taken for a failure re-signs with a new nonce and leaves a gap. Every text below comes
//! from a real node (the source of the client, or anvil's own answer) and has a fixture test.

use alloy::transports::{RpcError, TransportErrorKind};
use gemgate_domain::SendError;

/// Substrings (lowercase) per kind, tried in this order: the more specific texts first (a "replacement
/// transaction underpriced" is not a plain "transaction underpriced").
const RULES: &[(Kind, &[&str])] = &[
    (Kind::Reverted, &["execution reverted"]),
    (Kind::ReplacementUnderpriced, &["replacement transaction underpriced", "replacementnotallowed"]),
    (
        Kind::AlreadyKnown,
        &["already known", "alreadyknown", "known transaction", "already imported", "ownnoncealreadyused"],
    ),
    (Kind::NonceTooLow, &["nonce too low", "oldnonce"]),
    (Kind::NonceTooHigh, &["nonce too high", "noncegap", "nonce too far in future"]),
    (Kind::FeeCapTooLow, &["less than block base fee", "maxfeepergas too low"]),
    (Kind::TipAboveFeeCap, &["max priority fee per gas higher than max fee per gas"]),
    (Kind::FeeExceedsNodeCap, &["exceeds the configured cap", "transaction fee cap exceeded"]),
    (
        Kind::InsufficientFunds,
        &[
            "insufficient funds",
            "insufficientfunds",
            "upfront cost exceeds account balance",
            "insufficient balance",
        ],
    ),
    (Kind::IntrinsicGasTooLow, &["intrinsic gas too low", "intrinsic gas exceeds gas limit"]),
    (Kind::GasLimitTooHigh, &["exceeds block gas limit", "gaslimitexceeded"]),
    (
        Kind::Underpriced,
        &["transaction underpriced", "feetoolow", "gas price below configured minimum gas price"],
    ),
    (Kind::PoolFull, &["txpool is full"]),
    (
        Kind::InvalidSignature,
        &["invalid sender", "invalid signature", "failed to recover sender", "invalid chain id"],
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Reverted,
    ReplacementUnderpriced,
    AlreadyKnown,
    NonceTooLow,
    NonceTooHigh,
    FeeCapTooLow,
    TipAboveFeeCap,
    FeeExceedsNodeCap,
    InsufficientFunds,
    IntrinsicGasTooLow,
    GasLimitTooHigh,
    Underpriced,
    PoolFull,
    InvalidSignature,
}

/// The typed reason for a JSON-RPC error answered to `eth_sendRawTransaction` or `eth_estimateGas`.
pub fn classify_send(code: i64, message: &str) -> SendError {
    let lower = message.to_lowercase();
    let message = message.to_string();
    // anvil and geth answer a revert with code 3 (the revert data in `data`), whatever the text.
    let kind = if code == 3 {
        Some(Kind::Reverted)
    } else {
        RULES.iter().find(|(_, needles)| needles.iter().any(|n| lower.contains(n))).map(|(kind, _)| *kind)
    };
    match kind {
        Some(Kind::Reverted) => SendError::Reverted { message },
        Some(Kind::ReplacementUnderpriced) => SendError::ReplacementUnderpriced { message },
        Some(Kind::AlreadyKnown) => SendError::AlreadyKnown { message },
        Some(Kind::NonceTooLow) => SendError::NonceTooLow { message },
        Some(Kind::NonceTooHigh) => SendError::NonceTooHigh { message },
        Some(Kind::FeeCapTooLow) => SendError::FeeCapTooLow { message },
        Some(Kind::TipAboveFeeCap) => SendError::TipAboveFeeCap { message },
        Some(Kind::FeeExceedsNodeCap) => SendError::FeeExceedsNodeCap { message },
        Some(Kind::InsufficientFunds) => SendError::InsufficientFunds { message },
        Some(Kind::IntrinsicGasTooLow) => SendError::IntrinsicGasTooLow { message },
        Some(Kind::GasLimitTooHigh) => SendError::GasLimitTooHigh { message },
        Some(Kind::Underpriced) => SendError::Underpriced { message },
        Some(Kind::PoolFull) => SendError::PoolFull { message },
        Some(Kind::InvalidSignature) => SendError::InvalidSignature { message },
        None => SendError::Other { code, message },
    }
}

/// The typed reason when a node answered with a JSON-RPC error; `None` for transport failures (nothing
/// is known about whether the node got the transaction: the caller treats it as maybe sent).
pub fn send_error(error: &RpcError<TransportErrorKind>) -> Option<SendError> {
    match error {
        RpcError::ErrorResp(payload) => match classify_send(payload.code, &payload.message) {
            // Not a verdict on the transaction: the provider rate-limits or fails (Infura's -32005 "request
            // rate limited", an internal error); another try or another node answers. Taken for a refusal,
            // it failed the request and, for its no-op, left a nonce gap (found by `gemgate chaos soak`).
            SendError::Other { .. } if crate::classify::classify("", error, None).is_retryable() => None,
            refusal => Some(refusal),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_internal_errors_are_not_refusals() {
        let error = |code: i64, message: &str| {
            RpcError::<TransportErrorKind>::ErrorResp(alloy::rpc::json_rpc::ErrorPayload {
                code,
                message: message.to_string().into(),
                data: None,
            })
        };
        for (code, text) in [
            (-32005, "rate limit exceeded"),
            (-32005, "daily request count exceeded, request rate limited"),
            (429, "Too Many Requests"),
            (-32603, "internal error"),
            (-32000, "service temporarily unavailable"),
        ] {
            assert_eq!(send_error(&error(code, text)), None, "{code} {text}");
        }
        assert!(matches!(send_error(&error(-32000, "nonce too low")), Some(SendError::NonceTooLow { .. })));
        assert!(matches!(send_error(&error(-32000, "something new")), Some(SendError::Other { .. })));
    }

    /// One test per real text: `name: client, code, "text" => Variant`.
    macro_rules! fixtures {
        ($($name:ident: $client:literal, $code:literal, $text:literal => $variant:ident;)*) => {$(
            #[test]
            fn $name() {
                let got = classify_send($code, $text);
                assert!(
                    matches!(got, SendError::$variant { .. }),
                    "{} said {:?}: read as {got:?}, expected {}",
                    $client,
                    $text,
                    stringify!($variant)
                );
            }
        )*};
    }

    fixtures! {
        // geth: core/txpool/errors.go, core/txpool/legacypool, core/error.go, internal/ethapi.
        geth_nonce_too_low: "geth", -32000, "nonce too low" => NonceTooLow;
        geth_nonce_too_low_with_nonces: "geth", -32000, "nonce too low: next nonce 78, tx nonce 44" => NonceTooLow;
        geth_nonce_too_high: "geth", -32000, "nonce too high" => NonceTooHigh;
        geth_already_known: "geth", -32000, "already known" => AlreadyKnown;
        geth_replacement_underpriced: "geth", -32000, "replacement transaction underpriced" => ReplacementUnderpriced;
        geth_underpriced: "geth", -32000, "transaction underpriced" => Underpriced;
        geth_insufficient_funds: "geth", -32000, "insufficient funds for gas * price + value: have 0 want 67000000000000" => InsufficientFunds;
        geth_insufficient_funds_for_transfer: "geth", -32000, "insufficient funds for transfer" => InsufficientFunds;
        geth_intrinsic_gas: "geth", -32000, "intrinsic gas too low" => IntrinsicGasTooLow;
        geth_fee_cap_below_base_fee: "geth", -32000, "max fee per gas less than block base fee: address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8, maxFeePerGas: 1, baseFee: 7" => FeeCapTooLow;
        geth_tip_above_fee_cap: "geth", -32000, "max priority fee per gas higher than max fee per gas: address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8, maxPriorityFeePerGas: 2, maxFeePerGas: 1" => TipAboveFeeCap;
        geth_block_gas_limit: "geth", -32000, "exceeds block gas limit" => GasLimitTooHigh;
        geth_pool_full: "geth", -32000, "txpool is full" => PoolFull;
        geth_fee_cap: "geth", -32000, "tx fee (1.10 ether) exceeds the configured cap (1.00 ether)" => FeeExceedsNodeCap;
        geth_invalid_sender: "geth", -32000, "invalid sender" => InvalidSignature;
        geth_invalid_chain_id: "geth", -32000, "invalid chain id for signer: have 1 want 31337" => InvalidSignature;
        geth_reverted_with_reason: "geth", 3, "execution reverted: SourceCore: zero shares" => Reverted;
        // reth: the same words as geth, with the nonces and amounts spelled out.
        reth_nonce_too_low: "reth", -32000, "nonce too low: next nonce 2129, tx nonce 2128" => NonceTooLow;
        reth_already_known: "reth", -32000, "already known" => AlreadyKnown;
        reth_insufficient_funds: "reth", -32003, "insufficient funds for gas * price + value: have 0 want 21000000000000" => InsufficientFunds;
        reth_replacement_underpriced: "reth", -32000, "replacement transaction underpriced" => ReplacementUnderpriced;
        // erigon: geth's words, plus its own "already known" variant.
        erigon_nonce_too_low: "erigon", -32000, "nonce too low" => NonceTooLow;
        erigon_block_already_known: "erigon", -32000, "block already known" => AlreadyKnown;
        erigon_insufficient_balance: "erigon", -32000, "insufficient balance for transfer" => InsufficientFunds;
        // Nethermind before its geth-canonical messages: AcceptTxResult codes with details.
        nethermind_old_nonce: "nethermind", -32010, "OldNonce, Current nonce: 5, nonce of rejected tx: 3" => NonceTooLow;
        nethermind_nonce_gap: "nethermind", -32010, "NonceGap, Future nonce. Expected nonce: 3" => NonceTooHigh;
        nethermind_already_known: "nethermind", -32010, "AlreadyKnown" => AlreadyKnown;
        nethermind_own_nonce_used: "nethermind", -32010, "OwnNonceAlreadyUsed" => AlreadyKnown;
        nethermind_fee_cap_too_low: "nethermind", -32010, "FeeTooLow, MaxFeePerGas too low. MaxFeePerGas: 1, BaseFee: 7, MaxPriorityFeePerGas:1, Block number: 5" => FeeCapTooLow;
        nethermind_tip_too_low: "nethermind", -32010, "FeeTooLow, EffectivePriorityFeePerGas too low 0 < 1, BaseFee: 7" => Underpriced;
        nethermind_fee_too_low_to_compete: "nethermind", -32010, "FeeTooLowToCompete" => Underpriced;
        nethermind_insufficient_funds: "nethermind", -32010, "InsufficientFunds, Account balance: 0, cumulative cost: 21000" => InsufficientFunds;
        nethermind_replacement_not_allowed: "nethermind", -32010, "ReplacementNotAllowed" => ReplacementUnderpriced;
        nethermind_gas_limit_exceeded: "nethermind", -32010, "GasLimitExceeded, Gas limit: 30000000, gas limit of rejected tx: 40000000" => GasLimitTooHigh;
        // Nethermind now (TxPoolErrorMessages).
        nethermind_nonce_too_far: "nethermind", -32010, "nonce too far in future" => NonceTooHigh;
        nethermind_failed_to_recover_sender: "nethermind", -32010, "failed to recover sender" => InvalidSignature;
        // Besu: JsonRpcError.
        besu_nonce_too_low: "besu", -32001, "Nonce too low" => NonceTooLow;
        besu_known_transaction: "besu", -32000, "Known transaction" => AlreadyKnown;
        besu_replacement_underpriced: "besu", -32000, "Replacement transaction underpriced" => ReplacementUnderpriced;
        besu_min_gas_price: "besu", -32009, "Gas price below configured minimum gas price" => Underpriced;
        besu_upfront_cost: "besu", -32004, "Upfront cost exceeds account balance" => InsufficientFunds;
        besu_fee_cap: "besu", -32000, "Transaction fee cap exceeded" => FeeExceedsNodeCap;
        besu_intrinsic_gas: "besu", -32003, "Intrinsic gas exceeds gas limit" => IntrinsicGasTooLow;
        besu_block_gas_limit: "besu", -32000, "Transaction gas limit exceeds block gas limit" => GasLimitTooHigh;
        besu_invalid_signature: "besu", -32000, "Invalid signature" => InvalidSignature;
        // anvil 1.7.1: answers captured from a running anvil.
        anvil_nonce_too_low: "anvil", -32003, "nonce too low" => NonceTooLow;
        anvil_insufficient_funds: "anvil", -32003, "Insufficient funds for gas * price + value" => InsufficientFunds;
        anvil_intrinsic_gas: "anvil", -32000, "intrinsic gas too low" => IntrinsicGasTooLow;
        anvil_fee_cap_below_base_fee: "anvil", -32003, "max fee per gas less than block base fee" => FeeCapTooLow;
        anvil_tip_above_fee_cap: "anvil", -32003, "max priority fee per gas higher than max fee per gas" => TipAboveFeeCap;
        anvil_replacement_underpriced: "anvil", -32003, "replacement transaction underpriced" => ReplacementUnderpriced;
        anvil_already_imported: "anvil", -32003, "transaction already imported" => AlreadyKnown;
        anvil_reverted: "anvil", 3, "execution reverted" => Reverted;
        // Anything else stays as said.
        unknown_text: "any", -32000, "something new" => Other;
    }

    #[test]
    fn the_message_and_code_are_kept() {
        assert_eq!(
            classify_send(-32000, "something new"),
            SendError::Other { code: -32000, message: "something new".into() }
        );
        assert_eq!(
            classify_send(-32000, "nonce too low: next nonce 8, tx nonce 7"),
            SendError::NonceTooLow { message: "nonce too low: next nonce 8, tx nonce 7".into() }
        );
    }
}
