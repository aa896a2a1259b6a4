//! The Gemforce ABIs built into gemgate: the events of the sample contracts (which carry the ABI-verified
//! signatures of GEMFORCE.md), plus the newer trade-deal generation (collateral/interest naming and an
//! `OperationMode` appended to `TradeDealCreated`), which no sample contract emits by default.

use alloy::json_abi::{Event, JsonAbi};

macro_rules! artifact {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/artifacts/", $name, ".json"))
    };
}

const ARTIFACTS: &[&str] = &[
    artifact!("DiamondCutFacet"),
    artifact!("DiamondLoupeFacet"),
    artifact!("OwnershipFacet"),
    artifact!("ERC721Facet"),
    artifact!("GemforceMinterFacet"),
    artifact!("TradeDealFacet"),
    artifact!("MarketplaceFacet"),
    artifact!("CarbonCreditFacet"),
    artifact!("IdentityRegistryFacet"),
    artifact!("ClaimTopicsRegistryFacet"),
    artifact!("TrustedIssuersRegistryFacet"),
    artifact!("IdentityFactory"),
    artifact!("Treasury"),
];

const NEWER_GENERATION: &[&str] = &[
    "event TradeDealCreated(uint256 indexed tradeDealId, string name, string symbol, uint256 interestRate, uint256 collateralToInterestRatio, bool active, address nftAddress, address collateralAddress, address interestAddress, address usdcAddress, uint8 operationMode)",
    "event CollateralTokensRedeemed(uint256 indexed tradeDealId, address indexed redeemer, uint256 collateralAmount, uint256 usdcAmount)",
];

#[derive(serde::Deserialize)]
struct Artifact {
    abi: JsonAbi,
}

/// The built-in ABIs (one per facet or contract). They are compiled in, so a failure to parse them is a
/// build defect caught by this crate's tests.
pub fn gemforce_abis() -> Vec<JsonAbi> {
    ARTIFACTS.iter().filter_map(|json| serde_json::from_str::<Artifact>(json).ok().map(|a| a.abi)).collect()
}

/// Every built-in Gemforce event, both generations.
pub fn gemforce_events() -> Vec<Event> {
    let mut events: Vec<Event> = gemforce_abis().iter().flat_map(|abi| abi.events().cloned()).collect();
    events.extend(NEWER_GENERATION.iter().filter_map(|text| Event::parse(text).ok()));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemforce::Gemforce;

    #[test]
    fn every_built_in_abi_parses_and_every_projected_event_is_in_them() {
        assert_eq!(gemforce_abis().len(), ARTIFACTS.len());
        let events = gemforce_events();
        assert_eq!(
            events.len(),
            gemforce_abis().iter().map(|a| a.events().count()).sum::<usize>() + NEWER_GENERATION.len()
        );
        for (signature, topic) in Gemforce::required_topics() {
            assert!(events.iter().any(|e| e.selector() == topic), "{signature} is not in the built-in ABIs");
        }
    }
}
