//! The reorg and mining helpers do to a real anvil what the indexer tests rely on.

use alloy::eips::BlockNumberOrTag;
use alloy::network::TransactionBuilder;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use gemgate_testkit::{Anvil, AnvilOptions, anvil_or_skip};

async fn hash_at(anvil: &Anvil, number: u64) -> B256 {
    let block =
        anvil.provider().get_block_by_number(BlockNumberOrTag::Number(number)).await.unwrap().unwrap();
    block.header.hash
}

#[tokio::test]
async fn mine_reorg_snapshot_and_revert() {
    let Some(anvil) = anvil_or_skip("mine_reorg_snapshot_and_revert", AnvilOptions::default()).await.unwrap()
    else {
        return;
    };
    let start = anvil.block_number().await.unwrap();
    anvil.mine(10).await.unwrap();
    let head = anvil.block_number().await.unwrap();
    assert_eq!(head, start + 10);

    let before: Vec<B256> = hashes_between(&anvil, head - 3, head).await;
    anvil.reorg(3).await.unwrap();
    assert_eq!(anvil.block_number().await.unwrap(), head, "a reorg keeps the height");
    let after: Vec<B256> = hashes_between(&anvil, head - 3, head).await;
    assert_eq!(before[0], after[0], "the common ancestor is untouched");
    for i in 1..4 {
        assert_ne!(before[i], after[i], "block {} must have a new hash", head - 3 + i as u64);
    }
    let child =
        anvil.provider().get_block_by_number(BlockNumberOrTag::Number(head - 2)).await.unwrap().unwrap();
    assert_eq!(child.header.parent_hash, after[0], "the new branch links to the ancestor");

    let snapshot = anvil.snapshot().await.unwrap();
    anvil.mine(4).await.unwrap();
    assert!(anvil.revert(snapshot).await.unwrap());
    assert_eq!(anvil.block_number().await.unwrap(), head);
}

async fn hashes_between(anvil: &Anvil, from: u64, to: u64) -> Vec<B256> {
    let mut hashes = Vec::new();
    for n in from..=to {
        hashes.push(hash_at(anvil, n).await);
    }
    hashes
}

#[tokio::test]
async fn a_dropped_transaction_leaves_the_pool() {
    let Some(anvil) =
        anvil_or_skip("a_dropped_transaction_leaves_the_pool", AnvilOptions::default()).await.unwrap()
    else {
        return;
    };
    let provider = anvil.provider();
    anvil.set_automine(false).await.unwrap();
    let accounts = anvil.accounts();
    let request =
        TransactionRequest::default().with_from(accounts[0]).with_to(accounts[1]).with_value(U256::from(1));
    let pending = provider.send_transaction(request).await.unwrap();
    let tx = *pending.tx_hash();
    assert!(provider.get_transaction_by_hash(tx).await.unwrap().is_some());
    anvil.drop_transaction(tx).await.unwrap();
    assert!(provider.get_transaction_by_hash(tx).await.unwrap().is_none(), "dropped from the pool");
    anvil.mine(1).await.unwrap();
    let head = provider.get_block_by_number(BlockNumberOrTag::Latest).await.unwrap().unwrap();
    assert_eq!(head.transactions.len(), 0, "a dropped transaction is not mined");
}

#[tokio::test]
async fn interval_mining_produces_blocks_on_its_own() {
    let options =
        AnvilOptions { block_time: Some(std::time::Duration::from_millis(200)), ..AnvilOptions::default() };
    let Some(anvil) = anvil_or_skip("interval_mining_produces_blocks_on_its_own", options).await.unwrap()
    else {
        return;
    };
    let start = anvil.block_number().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(
        anvil.block_number().await.unwrap() > start,
        "no block was mined in 1.5 s with a 200 ms block time"
    );
}
