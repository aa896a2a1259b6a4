// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// Shared storage of the sample Gemforce facets, at one fixed slot (diamond storage pattern).
library LibGemforce {
    bytes32 constant STORAGE_POSITION = keccak256("gemgate.sample.gemforce.storage");

    struct TradeDeal {
        string name;
        string symbol;
        uint256 interestRate; // basis points
        uint256 vabbToVabiRatio;
        bool active;
        address owner;
        address nftAddress;
        address vabbAddress;
        address vabiAddress;
        address usdcAddress;
        uint256 fundingTarget;
        uint256 funded;
        bool fullyFunded;
        uint256 withdrawn;
        uint256 repaid;
        uint256 interestDistributed;
        uint256[] requiredClaimTopics;
        mapping(address => bool) participants;
        mapping(uint256 => address) invoiceDepositors;
        mapping(address => uint256) vabbBalances;
    }

    struct Listing {
        address nftContract;
        uint256 tokenId;
        address seller;
        address receiver;
        uint256 price;
        address paymentToken;
        bool active;
    }

    struct FeeReceiver {
        address receiver;
        uint256 sharePerMillion;
    }

    struct Layout {
        // ERC-721 (the Diamond is itself the Gemforce NFT).
        mapping(uint256 => address) owners;
        mapping(address => uint256) balances;
        mapping(uint256 => address) tokenApprovals;
        mapping(address => mapping(address => bool)) operatorApprovals;
        uint256 nextTokenId;
        // Trade deals.
        uint256 tradeDealCount;
        mapping(uint256 => TradeDeal) tradeDeals;
        // Marketplace.
        uint256 listingCount;
        mapping(uint256 => Listing) listings;
        FeeReceiver[] feeReceivers;
        bool marketplaceInitialized;
        // Carbon credits.
        mapping(uint256 => uint256) carbonBalances;
        mapping(uint256 => bool) carbonInitialized;
        // Identity.
        mapping(address => address) identities;
        mapping(address => mapping(uint256 => bytes)) claims;
        mapping(uint256 => bool) claimTopics;
        mapping(address => bool) trustedIssuers;
        // ERC-2771.
        address trustedForwarder;
    }

    error NotAuthorized(address caller);

    function appStorage() internal pure returns (Layout storage l) {
        bytes32 position = STORAGE_POSITION;
        assembly {
            l.slot := position
        }
    }
}
