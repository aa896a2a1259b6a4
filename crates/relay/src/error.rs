//! Why a relay request was refused, each with a stable code clients can branch on.

use gemgate_calls::abi::Revert;
use gemgate_domain::{ChainError, StoreError};
use gemgate_txm::SubmitError;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    UnknownRelayer(String),
    #[error("{0}")]
    WrongDomain(String),
    #[error("{0}")]
    WrongChain(String),
    #[error("the request's deadline {deadline} (Unix seconds) has passed")]
    Expired { deadline: u64 },
    #[error("{0}")]
    BadSignature(String),
    #[error(
        "the signature's s is in the upper half of the curve order: the malleable twin of a valid signature (EIP-2), refused"
    )]
    HighS,
    #[error("forwarder nonce {nonce} of {from} was used on chain (the forwarder's next nonce is {next})")]
    NonceUsed { from: String, nonce: String, next: String },
    #[error(
        "forwarder nonce {nonce} of {from} is ahead of the forwarder's next nonce {next}: send the earlier requests first, and this one once they are included"
    )]
    NonceAhead { from: String, nonce: String, next: String },
    #[error("another request with this forwarder nonce is being relayed (transaction {id})")]
    NoncePending { id: String },
    #[error("the target {target} does not trust the forwarder {forwarder} (isTrustedForwarder is false)")]
    TargetNotTrusting { target: String, forwarder: String },
    #[error("the request sends {value} wei; this relayer pays at most {max} (relayers.max_value_wei)")]
    ValueNotAllowed { value: String, max: String },
    #[error("calls to {0} are not in this relayer's allowlist")]
    TargetNotAllowed(String),
    #[error("the function {selector} of {target} is not in this relayer's allowlist")]
    SelectorNotAllowed { target: String, selector: String },
    #[error("{what} is spent until the window ends in {retry_after}s")]
    QuotaExceeded { what: String, retry_after: u64 },
    #[error("the sponsor's budget for relayer {0:?} is spent")]
    BudgetSpent(String),
    #[error("the fee cap needed, {needed} wei per gas, is above this relayer's ceiling {ceiling}")]
    GasPriceTooHigh { needed: u128, ceiling: u128 },
    #[error("the request reverts in simulation: {}", .0.reason)]
    SimulationReverted(Box<Revert>),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Submit(SubmitError),
    /// The relayer cannot work right now (its chain has no head, its forwarder does not answer).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RelayError {
    /// The stable code: what the API answers in `error.code` and the metrics count.
    pub fn code(&self) -> &'static str {
        match self {
            RelayError::UnknownRelayer(_) => "unknown_relayer",
            RelayError::WrongDomain(_) => "wrong_domain",
            RelayError::WrongChain(_) => "wrong_chain",
            RelayError::Expired { .. } => "expired",
            RelayError::BadSignature(_) => "bad_signature",
            RelayError::HighS => "high_s",
            RelayError::NonceUsed { .. } => "nonce_used",
            RelayError::NonceAhead { .. } => "nonce_ahead",
            RelayError::NoncePending { .. } => "nonce_pending",
            RelayError::TargetNotTrusting { .. } => "target_not_trusting",
            RelayError::ValueNotAllowed { .. } => "value_not_allowed",
            RelayError::TargetNotAllowed(_) => "target_not_allowed",
            RelayError::SelectorNotAllowed { .. } => "selector_not_allowed",
            RelayError::QuotaExceeded { .. } => "quota_exceeded",
            RelayError::BudgetSpent(_) => "budget_spent",
            RelayError::GasPriceTooHigh { .. } => "gas_price_too_high",
            RelayError::SimulationReverted(_) => "simulation_reverted",
            RelayError::Invalid(_) => "invalid_parameter",
            RelayError::Submit(_) => "refused",
            RelayError::Unavailable(_) | RelayError::Chain(_) | RelayError::Store(_) => "unavailable",
        }
    }
}
