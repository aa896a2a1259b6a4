//! The transaction lifecycle as a state machine. The manager moves requests only along these edges;
//! anything else is a bug and is refused.

use serde::{Deserialize, Serialize};

/// Where a transaction request is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    /// Accepted, nonce allocated, not signed yet.
    Queued,
    /// Signed bytes stored; may or may not have reached a node ("maybe sent").
    Signed,
    /// A node accepted one of its attempts.
    Submitted,
    /// In a canonical block.
    Included,
    /// Its block is at or below the safe head.
    Safe,
    /// Its block is at or below the finalized head and still canonical.
    Finalized,
    /// Included but reverted, or refused by every node for a reason retries cannot fix.
    Failed,
    /// Another request took its nonce (a replacement we did not make).
    Replaced,
    /// Replaced on purpose by a zero-value self-transfer at the same nonce.
    Cancelled,
    /// `valid_until` passed before inclusion; its nonce was filled with a no-op.
    Expired,
}

impl TxState {
    /// Every state, in lifecycle order.
    pub const ALL: [TxState; 10] = [
        TxState::Queued,
        TxState::Signed,
        TxState::Submitted,
        TxState::Included,
        TxState::Safe,
        TxState::Finalized,
        TxState::Failed,
        TxState::Replaced,
        TxState::Cancelled,
        TxState::Expired,
    ];

    /// The state's name as the API, the ledger and message kinds (`transaction.<state>`) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Queued => "queued",
            TxState::Signed => "signed",
            TxState::Submitted => "submitted",
            TxState::Included => "included",
            TxState::Safe => "safe",
            TxState::Finalized => "finalized",
            TxState::Failed => "failed",
            TxState::Replaced => "replaced",
            TxState::Cancelled => "cancelled",
            TxState::Expired => "expired",
        }
    }

    /// The state named `text` (as `as_str` spells it).
    pub fn parse(text: &str) -> Option<TxState> {
        TxState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No further change can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TxState::Finalized | TxState::Failed | TxState::Replaced | TxState::Cancelled | TxState::Expired
        )
    }

    /// Whether the lifecycle allows moving from `self` to `next`.
    pub fn can_become(self, next: TxState) -> bool {
        use TxState::*;
        match (self, next) {
            // Replaced: the key's nonce was used on chain before gemgate signed the request.
            (Queued, Signed | Replaced | Cancelled | Expired | Failed) => true,
            (Signed, Submitted | Signed | Cancelled | Expired | Failed) => true,
            (Submitted, Included | Submitted | Replaced | Cancelled | Expired | Failed) => true,
            // A reorg that removes the block sends an included transaction back to submitted.
            (Included, Safe | Finalized | Submitted | Failed) => true,
            (Safe, Finalized | Submitted) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TxState::*;
    use super::*;

    const ALL: [TxState; 10] = TxState::ALL;

    #[test]
    fn names_match_the_serde_spelling_and_parse_back() {
        for state in ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(TxState::parse(state.as_str()), Some(state));
        }
        assert_eq!(TxState::parse("mined"), None);
    }

    #[test]
    fn terminal_states_never_move() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?} must be refused");
            }
        }
    }

    #[test]
    fn happy_path_and_reorg_edges_exist() {
        let path = [Queued, Signed, Submitted, Included, Safe, Finalized];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{:?} -> {:?}", pair[0], pair[1]);
        }
        assert!(Included.can_become(Submitted));
        assert!(!Queued.can_become(Included), "cannot be included before it is signed and sent");
    }
}
