// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";

/// The claim topics the platform knows. Its `ClaimTopicAdded(uint256 indexed)` shares a name, but not a
/// signature, with the trusted issuers registry's event: indexers must dispatch on topic0.
contract ClaimTopicsRegistryFacet {
    event ClaimTopicAdded(uint256 indexed claimTopic);
    event ClaimTopicRemoved(uint256 indexed claimTopic);

    function addClaimTopic(uint256 claimTopic) external {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.appStorage().claimTopics[claimTopic] = true;
        emit ClaimTopicAdded(claimTopic);
    }

    function removeClaimTopic(uint256 claimTopic) external {
        LibDiamond.enforceIsContractOwner();
        delete LibGemforce.appStorage().claimTopics[claimTopic];
        emit ClaimTopicRemoved(claimTopic);
    }

    function isClaimTopic(uint256 claimTopic) external view returns (bool) {
        return LibGemforce.appStorage().claimTopics[claimTopic];
    }
}
