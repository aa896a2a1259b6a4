// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibERC721} from "../libraries/LibERC721.sol";

/// Mints Gemforce NFTs with on-chain attributes.
contract GemforceMinterFacet {
    struct Attribute {
        string key;
        uint8 attributeType;
        string value;
    }

    event GemforceMinted(uint256 indexed tokenId, address indexed owner, Attribute[] attributes);

    function gemforceMint(address to, Attribute[] calldata attributes) external returns (uint256 tokenId) {
        LibDiamond.enforceIsContractOwner();
        tokenId = LibERC721.mint(to);
        emit GemforceMinted(tokenId, to, attributes);
    }
}
