//! Reading an EIP-2535 Diamond's loupe (`facets()`), to check at start that the facets the indexer
//! tracks from `DiamondCut` events are the ones the Diamond reports.

use alloy::primitives::{Address, Bytes, FixedBytes};
use alloy::sol;
use alloy::sol_types::SolCall;
use gemgate_domain::ChainError;

use crate::EvmChain;

sol! {
    struct LoupeFacet {
        address facetAddress;
        bytes4[] functionSelectors;
    }
    function facets() external view returns (LoupeFacet[] memory facets_);
}

/// Every facet of a Diamond with its selectors, as its loupe reports them at `block` (`None`: now).
pub async fn diamond_facets(
    chain: &EvmChain,
    diamond: Address,
    block: Option<u64>,
) -> Result<Vec<(Address, Vec<FixedBytes<4>>)>, ChainError> {
    let output = chain.call_at(diamond, Bytes::from(facetsCall {}.abi_encode()), block).await?;
    // No code at that block (the Diamond is deployed later): no facets yet.
    if output.is_empty() {
        return Ok(Vec::new());
    }
    let facets = facetsCall::abi_decode_returns(&output).map_err(|e| ChainError::InvalidResponse {
        endpoint: "loupe".into(),
        message: format!("facets() of {diamond} did not decode: {e}"),
    })?;
    Ok(facets.into_iter().map(|f| (f.facetAddress, f.functionSelectors)).collect())
}
