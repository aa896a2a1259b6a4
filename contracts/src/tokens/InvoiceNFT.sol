// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// Invoice NFTs deposited into trade deals as collateral.
contract InvoiceNFT is ERC721, Ownable {
    uint256 public nextTokenId;

    constructor() ERC721("Gemforce Invoice", "INV") Ownable(msg.sender) {}

    function mint(address to) external onlyOwner returns (uint256 tokenId) {
        tokenId = ++nextTokenId;
        _mint(to, tokenId);
    }
}
