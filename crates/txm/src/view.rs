//! A transaction request as clients see it: the body of `GET /v1/transactions/{id}` and of every
//! `transaction.<state>` outbox message.

use gemgate_domain::ledger::{Attempt, TxRecord};
use serde::Serialize;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct TxView<'a> {
    pub id: &'a str,
    pub chain_id: u64,
    /// The configured signer (empty for a client-signed transaction).
    pub signer: &'a str,
    pub sender: &'a str,
    pub nonce: u64,
    pub to: Option<&'a str>,
    /// Wei, decimal.
    pub value: &'a str,
    pub data: &'a str,
    pub gas_limit: Option<u64>,
    pub speed: &'a str,
    pub state: gemgate_domain::TxState,
    /// A cancel or expiry in flight: the state the request ends in when its no-op is included.
    pub ending: Option<gemgate_domain::TxState>,
    pub error: Option<&'a str>,
    /// `api` (our signer's call), `relay` (our signer carrying users' ERC-2771 requests) or `raw`
    /// (client-signed).
    pub origin: &'a str,
    pub revision: u64,
    pub tx_hash: Option<&'a str>,
    pub block_number: Option<u64>,
    pub block_hash: Option<&'a str>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub receipt: Option<serde_json::Value>,
    pub valid_until: Option<&'a str>,
}

impl<'a> TxView<'a> {
    pub fn of(r: &'a TxRecord) -> Self {
        TxView {
            id: &r.id,
            chain_id: r.chain_id,
            signer: &r.signer,
            sender: &r.sender,
            nonce: r.nonce,
            to: r.to.as_deref(),
            value: &r.value,
            data: &r.data,
            gas_limit: r.gas_limit,
            speed: &r.speed,
            state: r.state,
            ending: r.ending,
            error: r.error.as_deref(),
            origin: &r.origin,
            revision: r.revision,
            tx_hash: r.tx_hash.as_deref(),
            block_number: r.block_number,
            block_hash: r.block_hash.as_deref(),
            receipt: r.receipt.as_deref().and_then(|t| serde_json::from_str(t).ok()),
            valid_until: r.valid_until.as_deref(),
        }
    }
}

/// The outbox body for a record.
pub fn payload(record: &TxRecord) -> String {
    serde_json::to_string(&TxView::of(record)).unwrap_or_default()
}

/// An attempt as clients see it (the signed bytes included: they are public once broadcast).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView<'a> {
    pub attempt: u32,
    pub purpose: &'a str,
    pub hash: &'a str,
    pub raw: &'a str,
    pub gas_limit: u64,
    pub max_fee_per_gas: &'a str,
    pub max_priority_fee_per_gas: Option<&'a str>,
    pub sent: bool,
}

impl<'a> AttemptView<'a> {
    pub fn of(a: &'a Attempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            purpose: &a.purpose,
            hash: &a.hash,
            raw: &a.raw,
            gas_limit: a.gas_limit,
            max_fee_per_gas: &a.max_fee_per_gas,
            max_priority_fee_per_gas: a.max_priority_fee_per_gas.as_deref(),
            sent: a.sent_ms.is_some(),
        }
    }
}
