//! What the transaction manager asks of a chain, as values: fee quotes, receipts as the watcher reads them,
//! a call to estimate or replay, and a broadcast's failure (a node's typed refusal apart from transport
//! trouble, because the two call for different actions). The `Broadcaster` port (`ports.rs`) speaks these;
//! the `chain` crate implements it over JSON-RPC.

use alloy_primitives::{Address, B256, Bytes, U256};

use crate::{ChainError, SendError};

/// A refusal or a failure to ask.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendFailure {
    #[error(transparent)]
    Refused(SendError),
    #[error(transparent)]
    Chain(ChainError),
}

/// What the watcher needs from a receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptSummary {
    pub tx_hash: B256,
    pub success: bool,
    pub block_number: u64,
    pub block_hash: B256,
    pub gas_used: u64,
    pub effective_gas_price: u128,
}

/// Fees as the chain quotes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeeQuote {
    /// EIP-1559: the next block's base fee and the priority fees paid at the requested percentiles, per
    /// recent block.
    Eip1559 { next_base_fee: u128, rewards: Vec<Vec<u128>> },
    /// A chain without a base fee: `eth_gasPrice`.
    Legacy { gas_price: u128 },
}

/// A call as `eth_estimateGas` and `eth_call` take it: no fees, no nonce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRequest {
    pub from: Address,
    /// `None`: a contract creation.
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: Option<u64>,
}
