// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";

/// Trusted claim issuers. Emits the second `ClaimTopicAdded`, `(address indexed issuer, uint256 claimTopic)`.
contract TrustedIssuersRegistryFacet {
    event TrustedIssuerAdded(address indexed trustedIssuer, uint256[] claimTopics);
    event TrustedIssuerRemoved(address indexed trustedIssuer);
    event ClaimTopicAdded(address indexed issuer, uint256 claimTopic);

    function addTrustedIssuer(address issuer, uint256[] calldata claimTopics) external {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.appStorage().trustedIssuers[issuer] = true;
        emit TrustedIssuerAdded(issuer, claimTopics);
    }

    function removeTrustedIssuer(address issuer) external {
        LibDiamond.enforceIsContractOwner();
        delete LibGemforce.appStorage().trustedIssuers[issuer];
        emit TrustedIssuerRemoved(issuer);
    }

    function addIssuerClaimTopic(address issuer, uint256 claimTopic) external {
        LibDiamond.enforceIsContractOwner();
        emit ClaimTopicAdded(issuer, claimTopic);
    }

    function isTrustedIssuer(address issuer) external view returns (bool) {
        return LibGemforce.appStorage().trustedIssuers[issuer];
    }
}
