//! Sending a transaction and waiting for its receipt without alloy's heartbeat (which polls every
//! 250 ms on local transports): the harness asks for the receipt directly, a few milliseconds apart.

use std::time::{Duration, Instant};

use alloy::network::Ethereum;
use alloy::providers::{PendingTransactionBuilder, Provider};
use alloy::rpc::types::TransactionReceipt;

use crate::{Result, TestkitError};

/// Generous: anvil with interval mining may take a block time or two.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for the receipt of a sent transaction and fails if it reverted.
pub async fn confirm(
    provider: &impl Provider,
    pending: PendingTransactionBuilder<Ethereum>,
    what: &str,
) -> Result<TransactionReceipt> {
    let tx = *pending.tx_hash();
    let started = Instant::now();
    loop {
        if let Some(receipt) = provider
            .get_transaction_receipt(tx)
            .await
            .map_err(TestkitError::rpc("eth_getTransactionReceipt"))?
        {
            if !receipt.status() {
                return Err(TestkitError::Reverted { what: what.to_string(), tx });
            }
            return Ok(receipt);
        }
        if started.elapsed() > RECEIPT_TIMEOUT {
            return Err(TestkitError::NoReceipt {
                what: what.to_string(),
                tx,
                seconds: RECEIPT_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
