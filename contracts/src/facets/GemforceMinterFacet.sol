// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibERC721} from "../libraries/LibERC721.sol";

/// Mints Gemforce NFTs with on-chain attributes, kept in the facet's own storage and readable through
/// `getAttributes`.
contract GemforceMinterFacet {
    struct Attribute {
        string key;
        uint8 attributeType;
        string value;
    }

    /// The facet's storage, at its own fixed slot (diamond storage pattern).
    struct MinterStorage {
        mapping(uint256 => Attribute[]) attributes;
    }

    bytes32 constant STORAGE_POSITION = keccak256("gemgate.sample.gemforce.attributes");

    event GemforceMinted(uint256 indexed tokenId, address indexed owner, Attribute[] attributes);

    function gemforceMint(address to, Attribute[] calldata attributes) external returns (uint256 tokenId) {
        LibDiamond.enforceIsContractOwner();
        tokenId = LibERC721.mint(to);
        Attribute[] storage stored = minterStorage().attributes[tokenId];
        for (uint256 i = 0; i < attributes.length; i++) {
            stored.push(attributes[i]);
        }
        emit GemforceMinted(tokenId, to, attributes);
    }

    function getAttributes(uint256 tokenId) external view returns (Attribute[] memory) {
        return minterStorage().attributes[tokenId];
    }

    function minterStorage() private pure returns (MinterStorage storage s) {
        bytes32 position = STORAGE_POSITION;
        assembly {
            s.slot := position
        }
    }
}
