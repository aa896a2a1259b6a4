// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibGemforce} from "../libraries/LibGemforce.sol";
import {LibERC721} from "../libraries/LibERC721.sol";

/// The Diamond as an ERC-721 token: `Transfer` comes from the Diamond's address like every facet event.
contract ERC721Facet {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    function name() external pure returns (string memory) {
        return "Gemforce";
    }

    function symbol() external pure returns (string memory) {
        return "GEM";
    }

    function balanceOf(address owner) external view returns (uint256) {
        return LibGemforce.appStorage().balances[owner];
    }

    function ownerOf(uint256 tokenId) external view returns (address) {
        return LibERC721.ownerOf(tokenId);
    }

    function approve(address to, uint256 tokenId) external {
        address owner = LibERC721.ownerOf(tokenId);
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        if (msg.sender != owner && !l.operatorApprovals[owner][msg.sender]) {
            revert LibERC721.NotOwnerNorApproved(msg.sender, tokenId);
        }
        l.tokenApprovals[tokenId] = to;
        emit Approval(owner, to, tokenId);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        LibERC721.ownerOf(tokenId);
        return LibGemforce.appStorage().tokenApprovals[tokenId];
    }

    function setApprovalForAll(address operator, bool approved) external {
        LibGemforce.appStorage().operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return LibGemforce.appStorage().operatorApprovals[owner][operator];
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        if (!LibERC721.isApprovedOrOwner(msg.sender, tokenId)) {
            revert LibERC721.NotOwnerNorApproved(msg.sender, tokenId);
        }
        LibERC721.transfer(from, to, tokenId);
    }
}
