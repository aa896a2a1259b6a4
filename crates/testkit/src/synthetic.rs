//! Large synthetic chains for benchmarks and crash tests: one `LogSpammer` contract emitting many
//! ERC-20-shaped logs, spread over many blocks (empty blocks mined between the transactions).

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;

use crate::bindings::LogSpammer;
use crate::deploy::deploy_artifact;
use crate::{Anvil, Result, TestkitError, confirm};

/// Logs per transaction: 100 logs cost about 0.2 M gas, far below a block's limit.
const LOGS_PER_TX: u64 = 100;

/// What was built.
#[derive(Debug, Clone)]
pub struct SyntheticChain {
    pub address: Address,
    /// The block of the contract's deployment.
    pub start_block: u64,
    pub end_block: u64,
    pub logs: u64,
}

/// Builds a chain of at least `blocks` blocks holding `logs` logs (rounded up to whole transactions of
/// 100) from one contract.
pub async fn build_log_chain(anvil: &Anvil, blocks: u64, logs: u64) -> Result<SyntheticChain> {
    let provider = anvil.provider();
    let owner = anvil.accounts()[0];
    let address = deploy_artifact(&provider, owner, "LogSpammer", Vec::new()).await?;
    let start_block = anvil.block_number().await?;
    let spammer = LogSpammer::new(address, provider.clone());
    let txs = logs.div_ceil(LOGS_PER_TX).max(1);
    let gap = (blocks / txs).max(1) - 1;
    let mut last = None;
    for i in 0..txs {
        let pending = spammer
            .spam(U256::from(LOGS_PER_TX), U256::from(i))
            .from(owner)
            .send()
            .await
            .map_err(TestkitError::contract("spam"))?;
        last = Some(pending);
        if gap > 0 {
            anvil.mine(gap).await?;
        }
    }
    if let Some(pending) = last {
        confirm(&provider, pending, "the last spam transaction").await?;
    }
    let end_block = provider.get_block_number().await.map_err(TestkitError::rpc("eth_blockNumber"))?;
    Ok(SyntheticChain { address, start_block, end_block, logs: txs * LOGS_PER_TX })
}
