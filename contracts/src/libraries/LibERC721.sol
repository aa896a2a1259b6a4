// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibGemforce} from "./LibGemforce.sol";

/// The Diamond's own ERC-721 logic, shared by the token, minter and marketplace facets.
library LibERC721 {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    error NonexistentToken(uint256 tokenId);
    error NotOwnerNorApproved(address caller, uint256 tokenId);
    error WrongFrom(address from, uint256 tokenId);
    error ZeroAddress();

    function ownerOf(uint256 tokenId) internal view returns (address owner) {
        owner = LibGemforce.appStorage().owners[tokenId];
        if (owner == address(0)) revert NonexistentToken(tokenId);
    }

    function isApprovedOrOwner(address spender, uint256 tokenId) internal view returns (bool) {
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        address owner = ownerOf(tokenId);
        return spender == owner || l.tokenApprovals[tokenId] == spender || l.operatorApprovals[owner][spender];
    }

    function mint(address to) internal returns (uint256 tokenId) {
        if (to == address(0)) revert ZeroAddress();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        tokenId = ++l.nextTokenId;
        l.owners[tokenId] = to;
        l.balances[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function transfer(address from, address to, uint256 tokenId) internal {
        if (to == address(0)) revert ZeroAddress();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        if (ownerOf(tokenId) != from) revert WrongFrom(from, tokenId);
        delete l.tokenApprovals[tokenId];
        l.balances[from] -= 1;
        l.balances[to] += 1;
        l.owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }
}
