// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";

/// Identities and their KYC claims. Only trusted issuers (or the Diamond owner) write.
contract IdentityRegistryFacet {
    event IdentityAdded(address trustedIssuer, address indexed _address, address identity);
    event IdentityRemoved(address trustedIssuer, address indexed _address, address identity);
    event ClaimAdded(address trustedIssuer, address indexed identity, uint256 indexed claimTopic, bytes claim);
    event ClaimRemoved(address trustedIssuer, address indexed identity, uint256 indexed claimTopic);
    event ClaimsSet(address trustedIssuer, address indexed identity, uint256[] claims);

    error NoIdentity(address account);

    function addIdentity(address account, address identity) external {
        onlyIssuer();
        LibGemforce.appStorage().identities[account] = identity;
        emit IdentityAdded(msg.sender, account, identity);
    }

    function removeIdentity(address account) external {
        onlyIssuer();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        address identity = l.identities[account];
        if (identity == address(0)) revert NoIdentity(account);
        delete l.identities[account];
        emit IdentityRemoved(msg.sender, account, identity);
    }

    function addClaim(address identity, uint256 claimTopic, bytes calldata claim) external {
        onlyIssuer();
        LibGemforce.appStorage().claims[identity][claimTopic] = claim;
        emit ClaimAdded(msg.sender, identity, claimTopic, claim);
    }

    function removeClaim(address identity, uint256 claimTopic) external {
        onlyIssuer();
        delete LibGemforce.appStorage().claims[identity][claimTopic];
        emit ClaimRemoved(msg.sender, identity, claimTopic);
    }

    function setClaims(address identity, uint256[] calldata claims) external {
        onlyIssuer();
        emit ClaimsSet(msg.sender, identity, claims);
    }

    function identityOf(address account) external view returns (address) {
        return LibGemforce.appStorage().identities[account];
    }

    function onlyIssuer() private view {
        if (!LibGemforce.appStorage().trustedIssuers[msg.sender] && msg.sender != LibDiamond.contractOwner()) {
            revert LibGemforce.NotAuthorized(msg.sender);
        }
    }
}
