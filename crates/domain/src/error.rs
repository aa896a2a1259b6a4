//! Errors the ports return. Each says whether retrying the same call can succeed, because the engines'
//! retry loops decide on that alone (misreading a permanent error as retryable stalls a pipeline).

use thiserror::Error;

/// What a provider said would work instead of a refused log range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHint {
    /// An explicit range (`[0x1, 0x2]`), as Alchemy and Infura give.
    Range(u64, u64),
    /// A maximum span in blocks (`limited to a 10,000 range`).
    MaxSpan(u64),
}

/// A failure reading the chain.
#[derive(Debug, Clone, Error)]
pub enum ChainError {
    #[error("rpc transport failed ({endpoint}): {message}")]
    Transport { endpoint: String, message: String },
    #[error("rpc rate limited ({endpoint}): {message}")]
    RateLimited { endpoint: String, message: String },
    /// The provider refused the log range; `hint` is what it said would work, when it said something usable.
    #[error("log range {from}..={to} refused: {message}")]
    RangeTooLarge { from: u64, to: u64, hint: Option<RangeHint>, message: String },
    /// The node does not have this block (yet): it lags, or the block was reorged away.
    #[error("block {number} not available from {endpoint}")]
    BlockUnavailable { endpoint: String, number: u64 },
    #[error("rpc error {code} ({endpoint}): {message}")]
    Rpc { endpoint: String, code: i64, message: String },
    #[error("invalid rpc response ({endpoint}): {message}")]
    InvalidResponse { endpoint: String, message: String },
}

impl ChainError {
    /// A short stable name of the failure, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transport { .. } => "transport",
            Self::RateLimited { .. } => "rate_limited",
            Self::RangeTooLarge { .. } => "range_too_large",
            Self::BlockUnavailable { .. } => "block_unavailable",
            Self::Rpc { .. } => "rpc",
            Self::InvalidResponse { .. } => "invalid_response",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::RateLimited { .. } | Self::BlockUnavailable { .. })
    }
}

/// A failure of the database.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("database unavailable: {message}")]
    Unavailable { message: String },
    /// Another writer holds the lease (its fencing token is newer than ours).
    #[error("lease for {resource} lost to fencing token {current}")]
    Fenced { resource: String, current: u64 },
    #[error("database error: {message}")]
    Database { message: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A failure delivering to a sink.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The broker or endpoint cannot be reached or did not confirm; the same message may be tried again.
    #[error("sink {sink} unavailable: {message}")]
    Unavailable { sink: String, message: String },
    /// The broker or endpoint refused this message; retrying it unchanged will not help.
    #[error("sink {sink} rejected message {message_id}: {message}")]
    Rejected { sink: String, message_id: String, message: String },
}

impl SinkError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A failure signing.
#[derive(Debug, Error)]
pub enum SignerError {
    #[error("signer {signer}: key unavailable: {message}")]
    KeyUnavailable { signer: String, message: String },
    /// A policy (for example DFNS approval) refused the request.
    #[error("signer {signer}: request {request_id} rejected: {reason}")]
    Rejected { signer: String, request_id: String, reason: String },
    #[error("signer {signer}: backend failed: {message}")]
    Backend { signer: String, message: String, retryable: bool },
}

impl SignerError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { retryable: true, .. })
    }
}

/// Why a node refused a transaction (`eth_sendRawTransaction`) or a gas estimate, read from its error text
/// by `gemgate_chain::classify_send`. Each kind names what the transaction manager does next, because
/// acting on the wrong one jams a signer (a nonce drift) or spends fees for nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The nonce is already used on chain: one of our attempts was included (look for its receipt), or
    /// the nonce was taken by another transaction. Never re-sign this request with a new nonce blindly.
    #[error("nonce too low: {message}")]
    NonceTooLow { message: String },
    /// A gap below this nonce: the earlier nonces are re-broadcast or filled with no-ops first.
    #[error("nonce too high: {message}")]
    NonceTooHigh { message: String },
    /// The node already holds these bytes (or another attempt at this nonce): counts as sent.
    #[error("already known: {message}")]
    AlreadyKnown { message: String },
    /// A transaction at this nonce is pending and this one does not pay enough more to replace it.
    #[error("replacement underpriced: {message}")]
    ReplacementUnderpriced { message: String },
    /// The fee is below what the pool accepts at all: re-priced before sending again.
    #[error("underpriced: {message}")]
    Underpriced { message: String },
    /// The fee cap is below the block's base fee: re-priced before sending again.
    #[error("fee cap below base fee: {message}")]
    FeeCapTooLow { message: String },
    /// The priority fee is above the fee cap: our pricing made an invalid transaction.
    #[error("priority fee above fee cap: {message}")]
    TipAboveFeeCap { message: String },
    /// The node's own cap on one transaction's fee (geth `--rpc.txfeecap`, Besu) is exceeded.
    #[error("fee above the node's cap: {message}")]
    FeeExceedsNodeCap { message: String },
    /// The signer cannot pay value plus gas: waits for funds, holding its nonce.
    #[error("insufficient funds: {message}")]
    InsufficientFunds { message: String },
    /// The gas limit is below the transaction's intrinsic gas: estimated again.
    #[error("intrinsic gas too low: {message}")]
    IntrinsicGasTooLow { message: String },
    /// The gas limit is above the block gas limit: can never be included as is.
    #[error("gas limit above the block gas limit: {message}")]
    GasLimitTooHigh { message: String },
    /// The execution reverts (answered by gas estimation or a call): the request fails with the reason.
    #[error("execution reverted: {message}")]
    Reverted { message: String },
    /// The node's pool is full: sent again later, unchanged.
    #[error("pool full: {message}")]
    PoolFull { message: String },
    /// The signature does not recover or is for another chain: a signer or configuration bug.
    #[error("invalid signature or chain: {message}")]
    InvalidSignature { message: String },
    /// Anything else, kept as the node said it.
    #[error("rpc error {code}: {message}")]
    Other { code: i64, message: String },
}
