//! Users' ERC-2771 requests as a frontend makes them, written here independently of gemgate's relayer: the
//! EIP-712 `ForwardRequest` of OpenZeppelin's `ERC2771Forwarder`, signed by a user's key under a domain, and
//! the `POST /v1/relay` body that carries it. Also the holdings a relayed call needs: Gemforce NFTs with
//! carbon credits, minted to users who hold no ether.

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolStruct, eip712_domain};
use serde_json::{Value, json};

use crate::bindings::{CarbonCreditFacet, GemforceMinterFacet};
use crate::{Result, TestkitError};

alloy::sol! {
    struct ForwardRequest {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint256 nonce;
        uint48 deadline;
        bytes data;
    }

    function retireCarbonCredits(uint256 tokenId, uint256 amount) external;
}

/// The domain a request is signed under.
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub version: String,
    pub chain_id: u64,
    pub forwarder: Address,
}

impl Domain {
    /// The sample `GemforceForwarder`'s domain.
    pub fn gemforce(chain_id: u64, forwarder: Address) -> Self {
        Self { name: "GemforceForwarder".into(), version: "1".into(), chain_id, forwarder }
    }

    pub fn json(&self) -> Value {
        json!({"name": self.name, "version": self.version, "chainId": self.chain_id,
            "verifyingContract": self.forwarder.to_string()})
    }
}

/// A request before it is signed.
#[derive(Debug, Clone)]
pub struct Meta {
    pub to: Address,
    pub data: Bytes,
    pub gas: u64,
    pub nonce: u64,
    pub deadline: u64,
}

/// `retireCarbonCredits(token, amount)` calldata.
pub fn retire_call(token: U256, amount: u64) -> Bytes {
    retireCarbonCreditsCall { tokenId: token, amount: U256::from(amount) }.abi_encode().into()
}

/// Seconds since the epoch, plus `ahead`.
pub fn deadline_in(ahead: u64) -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() + ahead
}

/// `user`'s 65-byte signature (v 27/28) of `meta` under `domain`, and the request's `from`.
pub fn sign(user: &PrivateKeySigner, domain: &Domain, meta: &Meta) -> Bytes {
    sign_as(user, user.address(), domain, meta)
}

/// Signed by `user` while claiming to be `from` (a forgery, when they differ).
pub fn sign_as(user: &PrivateKeySigner, from: Address, domain: &Domain, meta: &Meta) -> Bytes {
    let request = ForwardRequest {
        from,
        to: meta.to,
        value: U256::ZERO,
        gas: U256::from(meta.gas),
        nonce: U256::from(meta.nonce),
        deadline: alloy::primitives::aliases::U48::from(meta.deadline),
        data: meta.data.clone(),
    };
    let domain = eip712_domain! {
        name: domain.name.clone(),
        version: domain.version.clone(),
        chain_id: domain.chain_id,
        verifying_contract: domain.forwarder,
    };
    let digest = request.eip712_signing_hash(&domain);
    let signature = user.sign_hash_sync(&digest).expect("local keys sign");
    Bytes::from(signature.as_bytes().to_vec())
}

/// The `POST /v1/relay` body for a request signed as `from`, with the domain it was signed under.
pub fn body(relayer: &str, from: Address, domain: &Domain, meta: &Meta, signature: &Bytes) -> Value {
    json!({
        "relayer": relayer,
        "chain_id": domain.chain_id,
        "request": {
            "from": from.to_string(),
            "to": meta.to.to_string(),
            "value": "0",
            "gas": meta.gas,
            "nonce": meta.nonce.to_string(),
            "deadline": meta.deadline,
            "data": meta.data.to_string(),
        },
        "signature": signature.to_string(),
        "domain": domain.json(),
    })
}

/// Mints a Gemforce NFT to `holder` (by the Diamond's `owner`) and gives it `credits` carbon credits;
/// returns the token id.
pub async fn mint_with_credits(
    provider: &DynProvider,
    diamond: Address,
    owner: Address,
    holder: Address,
    credits: u64,
) -> Result<U256> {
    let tokens = mint_many_with_credits(provider, diamond, owner, &[holder], credits).await?;
    Ok(tokens[0])
}

/// Mints one Gemforce NFT to each of `holders` and gives each `credits` carbon credits; returns the token
/// ids in the holders' order. Many holders (benchmarks) are minted with automine paused, the transactions
/// sent in nonce order and mined a full block at a time.
pub async fn mint_many_with_credits(
    provider: &DynProvider,
    diamond: Address,
    owner: Address,
    holders: &[Address],
    credits: u64,
) -> Result<Vec<U256>> {
    use alloy::providers::Provider;
    let minter = GemforceMinterFacet::new(diamond, provider.clone());
    let carbon = CarbonCreditFacet::new(diamond, provider.clone());
    let many = holders.len() > 1;
    if many {
        let _: () = provider
            .raw_request("evm_setAutomine".into(), (false,))
            .await
            .map_err(TestkitError::rpc("evm_setAutomine"))?;
    }
    let mut nonce =
        provider.get_transaction_count(owner).await.map_err(TestkitError::rpc("eth_getTransactionCount"))?;
    let mut minted = Vec::new();
    for holder in holders {
        let call = minter.gemforceMint(*holder, Vec::new()).from(owner).nonce(nonce).gas(200_000);
        minted.push(*call.send().await.map_err(TestkitError::contract("gemforceMint"))?.tx_hash());
        nonce += 1;
    }
    let receipts = mined(provider, &minted, many).await?;
    let mut tokens = Vec::new();
    for receipt in receipts {
        let token = receipt
            .inner
            .logs()
            .iter()
            // The last log is GemforceMinted(tokenId indexed, owner indexed, ...) after ERC-721's Transfer.
            .rev()
            .find(|log| log.address() == diamond && log.topics().len() > 2)
            .map(|log| U256::from_be_bytes(log.topics()[1].0))
            .ok_or_else(|| TestkitError::Reverted {
                what: "gemforceMint emitted no tokenId".into(),
                tx: receipt.transaction_hash,
            })?;
        tokens.push(token);
    }
    let mut initialized = Vec::new();
    for token in &tokens {
        let call =
            carbon.initializeCarbonCredits(*token, U256::from(credits)).from(owner).nonce(nonce).gas(200_000);
        initialized
            .push(*call.send().await.map_err(TestkitError::contract("initializeCarbonCredits"))?.tx_hash());
        nonce += 1;
    }
    mined(provider, &initialized, many).await?;
    if many {
        let _: () = provider
            .raw_request("evm_setAutomine".into(), (true,))
            .await
            .map_err(TestkitError::rpc("evm_setAutomine"))?;
    }
    Ok(tokens)
}

/// The successful receipts of `sent`, mining blocks until the last is in one when `mine` is set.
async fn mined(
    provider: &DynProvider,
    sent: &[alloy::primitives::B256],
    mine: bool,
) -> Result<Vec<alloy::rpc::types::TransactionReceipt>> {
    use alloy::providers::Provider;
    let Some(last) = sent.last() else { return Ok(Vec::new()) };
    let started = std::time::Instant::now();
    // anvil mines a pool of thousands of transactions a block at a time: allow for it.
    let patience = std::time::Duration::from_secs(120 + sent.len() as u64 / 20);
    loop {
        let receipt = provider
            .get_transaction_receipt(*last)
            .await
            .map_err(TestkitError::rpc("eth_getTransactionReceipt"))?;
        if receipt.is_some() {
            break;
        }
        if started.elapsed() > patience {
            return Err(TestkitError::NoReceipt {
                what: "minting".into(),
                tx: *last,
                seconds: patience.as_secs(),
            });
        }
        if mine {
            let _: String =
                provider.raw_request("evm_mine".into(), ()).await.map_err(TestkitError::rpc("evm_mine"))?;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    let mut receipts = Vec::new();
    for hash in sent {
        let receipt = provider
            .get_transaction_receipt(*hash)
            .await
            .map_err(TestkitError::rpc("eth_getTransactionReceipt"))?
            .ok_or_else(|| TestkitError::NoReceipt { what: "minting".into(), tx: *hash, seconds: 0 })?;
        if !receipt.status() {
            return Err(TestkitError::Reverted { what: "minting".into(), tx: *hash });
        }
        receipts.push(receipt);
    }
    Ok(receipts)
}
