//! The relayer's values shared by its engine and the store: a relayed meta-request as the ledger keeps it
//! beside the transaction that carries it, and a quota charge. The checks themselves live in the relay crate.

/// An ERC-2771 request relayed inside a transaction: who signed it, what it calls, the forwarder nonce it
/// spends. Stored with the transaction in the database transaction that accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedCall {
    /// The EIP-712 digest the user signed, `0x` hex: one transaction per digest.
    pub digest: String,
    /// The `[[relayers]]` entry's name.
    pub relayer: String,
    /// The user (the request's `from`), lower case `0x` hex.
    pub from: String,
    /// The target contract, lower case `0x` hex.
    pub to: String,
    /// The forwarder nonce the request spends, decimal.
    pub nonce: String,
    /// The request's deadline, Unix seconds.
    pub deadline: u64,
}

/// One quota to charge: `amount` more in the window of `bucket` starting at `window_start` (Unix seconds),
/// refused if the window's total would pass `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaCharge {
    /// What is counted, e.g. `carbon:user:0xabc..:requests`.
    pub bucket: String,
    pub window_start: u64,
    pub amount: u64,
    pub limit: u64,
}
