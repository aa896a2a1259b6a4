// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";
import {LibERC721} from "../libraries/LibERC721.sol";

/// An NFT marketplace with fee receivers. Item ids count listings from 1 in the order they were made.
/// `Listings.owner` is the escrow holding the NFT while it is listed (the Diamond itself).
contract MarketplaceFacet {
    event Listings(
        address indexed nftContract,
        uint256 indexed tokenId,
        address seller,
        address receiver,
        address owner,
        uint256 price,
        bool sold,
        address paymentToken
    );
    event Sales(address indexed tokenAddress, uint256 indexed tokenId, address indexed owner);
    event Delisted(uint256 indexed itemId);
    event Bids(uint256 indexed itemId, address bidder, uint256 amount);
    event PaymentDistributed(address token, address receiver, uint256 amount);
    event MarketplaceInitialized(LibGemforce.FeeReceiver[] feeReceivers);

    error ListingNotActive(uint256 itemId);
    error WrongPayment(uint256 expected, uint256 sent);
    error NotSeller(uint256 itemId, address caller);
    error FeesTooHigh(uint256 totalPerMillion);
    error NativeTransferFailed(address to, uint256 amount);
    error UnknownListing(uint256 itemId);

    /// Sets the fee receivers; calling it again replaces them (and emits `MarketplaceInitialized` again).
    function initializeMarketplace(LibGemforce.FeeReceiver[] calldata feeReceivers) external {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        delete l.feeReceivers;
        uint256 total;
        for (uint256 i; i < feeReceivers.length; i++) {
            total += feeReceivers[i].sharePerMillion;
            l.feeReceivers.push(feeReceivers[i]);
        }
        if (total > 1_000_000) revert FeesTooHigh(total);
        l.marketplaceInitialized = true;
        emit MarketplaceInitialized(feeReceivers);
    }

    /// Lists an NFT (the Diamond's own or an external ERC-721) and takes it into escrow.
    function listItem(address nftContract, uint256 tokenId, uint256 price, address paymentToken, address receiver)
        external
        returns (uint256 itemId)
    {
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        if (nftContract == address(this)) {
            if (!LibERC721.isApprovedOrOwner(msg.sender, tokenId)) {
                revert LibERC721.NotOwnerNorApproved(msg.sender, tokenId);
            }
            LibERC721.transfer(msg.sender, address(this), tokenId);
        } else {
            IERC721(nftContract).transferFrom(msg.sender, address(this), tokenId);
        }
        itemId = ++l.listingCount;
        l.listings[itemId] = LibGemforce.Listing({
            nftContract: nftContract,
            tokenId: tokenId,
            seller: msg.sender,
            receiver: receiver,
            price: price,
            paymentToken: paymentToken,
            active: true
        });
        emit Listings(nftContract, tokenId, msg.sender, receiver, address(this), price, false, paymentToken);
    }

    function buyItem(uint256 itemId) external payable {
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        LibGemforce.Listing storage item = l.listings[itemId];
        if (!item.active) revert ListingNotActive(itemId);
        item.active = false;
        if (item.paymentToken == address(0)) {
            if (msg.value != item.price) revert WrongPayment(item.price, msg.value);
        } else {
            if (msg.value != 0) revert WrongPayment(0, msg.value);
            IERC20(item.paymentToken).transferFrom(msg.sender, address(this), item.price);
        }
        uint256 remaining = item.price;
        for (uint256 i; i < l.feeReceivers.length; i++) {
            uint256 fee = (item.price * l.feeReceivers[i].sharePerMillion) / 1_000_000;
            remaining -= fee;
            pay(item.paymentToken, l.feeReceivers[i].receiver, fee);
        }
        pay(item.paymentToken, item.receiver, remaining);
        moveNft(item.nftContract, msg.sender, item.tokenId);
        emit Sales(item.nftContract, item.tokenId, msg.sender);
    }

    function delistItem(uint256 itemId) external {
        LibGemforce.Listing storage item = LibGemforce.appStorage().listings[itemId];
        if (!item.active) revert ListingNotActive(itemId);
        if (item.seller != msg.sender) revert NotSeller(itemId, msg.sender);
        item.active = false;
        moveNft(item.nftContract, item.seller, item.tokenId);
        emit Delisted(itemId);
    }

    function bid(uint256 itemId, uint256 amount) external {
        if (!LibGemforce.appStorage().listings[itemId].active) revert ListingNotActive(itemId);
        emit Bids(itemId, msg.sender, amount);
    }

    function listingCount() external view returns (uint256) {
        return LibGemforce.appStorage().listingCount;
    }

    /// A listing as stored (what reconciliation compares the listings projection with).
    function getListing(uint256 itemId) external view returns (LibGemforce.Listing memory listing) {
        listing = LibGemforce.appStorage().listings[itemId];
        if (listing.nftContract == address(0)) revert UnknownListing(itemId);
    }

    function pay(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(token).transfer(to, amount);
        }
        emit PaymentDistributed(token, to, amount);
    }

    function moveNft(address nftContract, address to, uint256 tokenId) private {
        if (nftContract == address(this)) {
            LibERC721.transfer(address(this), to, tokenId);
        } else {
            IERC721(nftContract).transferFrom(address(this), to, tokenId);
        }
    }
}
