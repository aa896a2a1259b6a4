//! Typed bindings generated from the committed artifacts (ABI and bytecode), for deploying and calling
//! the sample contracts. Each contract gets its own module because several share struct types
//! (`IDiamond.FacetCut`, `LibGemforce.FeeReceiver`) that `sol!` would otherwise define twice.
#![allow(missing_docs, missing_debug_implementations, clippy::too_many_arguments)]

macro_rules! bind {
    ($module:ident, $name:ident, $path:literal) => {
        pub mod $module {
            alloy::sol!(
                #[sol(rpc)]
                $name,
                $path
            );
        }
        pub use $module::$name;
    };
}

bind!(diamond, Diamond, "../../contracts/artifacts/Diamond.json");
bind!(diamond_cut_facet, DiamondCutFacet, "../../contracts/artifacts/DiamondCutFacet.json");
bind!(diamond_loupe_facet, DiamondLoupeFacet, "../../contracts/artifacts/DiamondLoupeFacet.json");
bind!(ownership_facet, OwnershipFacet, "../../contracts/artifacts/OwnershipFacet.json");
bind!(erc721_facet, ERC721Facet, "../../contracts/artifacts/ERC721Facet.json");
bind!(gemforce_minter_facet, GemforceMinterFacet, "../../contracts/artifacts/GemforceMinterFacet.json");
bind!(trade_deal_facet, TradeDealFacet, "../../contracts/artifacts/TradeDealFacet.json");
bind!(marketplace_facet, MarketplaceFacet, "../../contracts/artifacts/MarketplaceFacet.json");
bind!(carbon_credit_facet, CarbonCreditFacet, "../../contracts/artifacts/CarbonCreditFacet.json");
bind!(identity_registry_facet, IdentityRegistryFacet, "../../contracts/artifacts/IdentityRegistryFacet.json");
bind!(
    claim_topics_registry_facet,
    ClaimTopicsRegistryFacet,
    "../../contracts/artifacts/ClaimTopicsRegistryFacet.json"
);
bind!(
    trusted_issuers_registry_facet,
    TrustedIssuersRegistryFacet,
    "../../contracts/artifacts/TrustedIssuersRegistryFacet.json"
);
bind!(identity_factory, IdentityFactory, "../../contracts/artifacts/IdentityFactory.json");
bind!(treasury, Treasury, "../../contracts/artifacts/Treasury.json");
bind!(sample_erc20, SampleERC20, "../../contracts/artifacts/SampleERC20.json");
bind!(invoice_nft, InvoiceNFT, "../../contracts/artifacts/InvoiceNFT.json");
bind!(gemforce_forwarder, GemforceForwarder, "../../contracts/artifacts/GemforceForwarder.json");
bind!(log_spammer, LogSpammer, "../../contracts/artifacts/LogSpammer.json");
