//! Deploys the sample Gemforce system: the Diamond with every facet, the mock USDC and the deals' VABB/VABI
//! tokens, the invoice NFT, the identity factory, the treasury and OpenZeppelin's ERC-2771 forwarder (trusted
//! by `CarbonCreditFacet`), and Multicall3 at its canonical address.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolConstructor;

use crate::artifacts::{Artifact, DIAMOND_FACETS};
use crate::bindings::{CarbonCreditFacet, Diamond, DiamondCutFacet, SampleERC20};
use crate::{Result, TestkitError, confirm};

/// Where everything was deployed.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub chain_id: u64,
    /// Owner of the Diamond and of the mintable tokens (dev account 0).
    pub owner: Address,
    pub diamond: Address,
    /// Facet name and address, in the order they were cut in.
    pub facets: Vec<(String, Address)>,
    pub usdc: Address,
    pub vabb: Address,
    pub vabi: Address,
    pub invoice_nft: Address,
    pub identity_factory: Address,
    pub treasury: Address,
    pub forwarder: Address,
    /// Multicall3, at `MULTICALL3` as on most public chains.
    pub multicall3: Address,
    /// The block of the first deployment transaction: index from here.
    pub start_block: u64,
}

impl Deployment {
    /// The address of a facet by contract name (the latest, if it was replaced).
    pub fn facet(&self, name: &str) -> Option<Address> {
        self.facets.iter().rev().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Every address that emits sample events: the Diamond, the factory, the treasury.
    pub fn event_sources(&self) -> Vec<Address> {
        vec![self.diamond, self.identity_factory, self.treasury]
    }
}

/// Multicall3's address on most EVM chains (the same everywhere: it was deployed from a keyless account).
pub const MULTICALL3: Address = alloy::primitives::address!("cA11bde05977b3631167028862bE2a173976CA11");

/// Puts the sample Multicall3 at its canonical address on anvil: deployed from `from`, then its code copied
/// there with `anvil_setCode` (the canonical deployment needs a pre-signed transaction from a keyless
/// account that only real networks replay).
pub async fn install_multicall3(provider: &DynProvider, from: Address) -> Result<Address> {
    let deployed = deploy_artifact(provider, from, "Multicall3", Vec::new()).await?;
    let code = provider.get_code_at(deployed).await.map_err(TestkitError::rpc("eth_getCode"))?;
    provider
        .raw_request::<_, serde_json::Value>("anvil_setCode".into(), (MULTICALL3, code))
        .await
        .map_err(TestkitError::rpc("anvil_setCode"))?;
    Ok(MULTICALL3)
}

/// Deploys a contract from its artifact with ABI-encoded constructor arguments.
pub async fn deploy_artifact(
    provider: &DynProvider,
    from: Address,
    name: &str,
    args: Vec<u8>,
) -> Result<Address> {
    let artifact = Artifact::named(name)?;
    let mut code = artifact.bytecode()?.to_vec();
    code.extend_from_slice(&args);
    let request = TransactionRequest::default().from(from).with_deploy_code(Bytes::from(code));
    let pending =
        provider.send_transaction(request).await.map_err(TestkitError::rpc("eth_sendTransaction"))?;
    let receipt: TransactionReceipt = confirm(provider, pending, &format!("deploying {name}")).await?;
    receipt.contract_address.ok_or_else(|| TestkitError::Artifact {
        name: name.to_string(),
        message: "deployment receipt has no contract address".into(),
    })
}

/// Deploys a fresh copy of the facet `name` and points every one of its functions at it with a
/// `diamondCut` replace from `owner`, as an upgrade does. Returns the new facet and the cut's block.
pub async fn replace_facet(
    provider: &DynProvider,
    diamond: Address,
    owner: Address,
    name: &str,
) -> Result<(Address, u64)> {
    let facet = deploy_artifact(provider, owner, name, Vec::new()).await?;
    let cuts = add_cuts(&[(name.to_string(), facet)], 1)?;
    let pending = DiamondCutFacet::new(diamond, provider.clone())
        .diamondCut(cuts, Address::ZERO, Bytes::new())
        .from(owner)
        .send()
        .await
        .map_err(TestkitError::contract("diamondCut"))?;
    let receipt = confirm(provider, pending, "diamondCut (replace)").await?;
    Ok((facet, receipt.block_number.unwrap_or_default()))
}

/// Facet cuts that add every function of the named facets, deployed at the given addresses.
pub(crate) fn add_cuts(
    facets: &[(String, Address)],
    action: u8,
) -> Result<Vec<crate::bindings::diamond_cut_facet::IDiamond::FacetCut>> {
    facets
        .iter()
        .map(|(name, address)| {
            let selectors = Artifact::named(name)?.abi()?.functions().map(|f| f.selector()).collect();
            Ok(crate::bindings::diamond_cut_facet::IDiamond::FacetCut {
                facetAddress: *address,
                action,
                functionSelectors: selectors,
            })
        })
        .collect()
}

/// Deploys the whole sample system from `owner` (which must be an unlocked account).
pub async fn deploy_gemforce(provider: &DynProvider, owner: Address) -> Result<Deployment> {
    let chain_id = provider.get_chain_id().await.map_err(TestkitError::rpc("eth_chainId"))?;
    let start_block = provider.get_block_number().await.map_err(TestkitError::rpc("eth_blockNumber"))? + 1;

    let cut_facet = deploy_artifact(provider, owner, "DiamondCutFacet", Vec::new()).await?;
    let diamond_args = Diamond::constructorCall { owner, diamondCutFacet: cut_facet }.abi_encode();
    let diamond = deploy_artifact(provider, owner, "Diamond", diamond_args).await?;

    let mut facets = vec![("DiamondCutFacet".to_string(), cut_facet)];
    for name in DIAMOND_FACETS {
        facets.push((name.to_string(), deploy_artifact(provider, owner, name, Vec::new()).await?));
    }
    // Two cuts, as a real rollout would: the standard facets first, then the Gemforce ones.
    let cutter = DiamondCutFacet::new(diamond, provider.clone());
    let (standard, gemforce) = facets[1..].split_at(3);
    for group in [standard, gemforce] {
        let cuts = add_cuts(group, 0)?;
        let pending = cutter
            .diamondCut(cuts, Address::ZERO, Bytes::new())
            .from(owner)
            .send()
            .await
            .map_err(TestkitError::contract("diamondCut"))?;
        confirm(provider, pending, "diamondCut").await?;
    }

    let token = |name: &str, symbol: &str, decimals: u8| {
        SampleERC20::constructorCall { name_: name.into(), symbol_: symbol.into(), decimals_: decimals }
            .abi_encode()
    };
    let usdc = deploy_artifact(provider, owner, "SampleERC20", token("USD Coin (sample)", "USDC", 6)).await?;
    let vabb =
        deploy_artifact(provider, owner, "SampleERC20", token("Trade Deal Collateral", "VABB", 18)).await?;
    let vabi =
        deploy_artifact(provider, owner, "SampleERC20", token("Trade Deal Interest", "VABI", 18)).await?;
    let invoice_nft = deploy_artifact(provider, owner, "InvoiceNFT", Vec::new()).await?;
    let identity_factory = deploy_artifact(provider, owner, "IdentityFactory", Vec::new()).await?;
    let treasury = deploy_artifact(provider, owner, "Treasury", Vec::new()).await?;
    let forwarder = deploy_artifact(provider, owner, "GemforceForwarder", Vec::new()).await?;
    let multicall3 = install_multicall3(provider, owner).await?;

    let carbon = CarbonCreditFacet::new(diamond, provider.clone());
    let pending = carbon
        .setTrustedForwarder(forwarder)
        .from(owner)
        .send()
        .await
        .map_err(TestkitError::contract("setTrustedForwarder"))?;
    confirm(provider, pending, "setTrustedForwarder").await?;

    Ok(Deployment {
        chain_id,
        owner,
        diamond,
        facets,
        usdc,
        vabb,
        vabi,
        invoice_nft,
        identity_factory,
        treasury,
        forwarder,
        multicall3,
        start_block,
    })
}
