// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";
import {LibERC721} from "../libraries/LibERC721.sol";

/// Carbon credits attached to Gemforce NFTs. This facet trusts an ERC-2771 forwarder: a token holder can
/// retire credits through a relayed meta-transaction, and the holder (not the relayer) is the sender.
contract CarbonCreditFacet {
    event CarbonCreditsInitialized(uint256 indexed tokenId, uint256 initialBalance);
    event CarbonCreditsRetired(uint256 indexed tokenId, uint256 amount, uint256 remainingBalance);
    event TrustedForwarderSet(address indexed forwarder);

    error AlreadyInitialized(uint256 tokenId);
    error NotTokenOwner(uint256 tokenId, address sender);
    error InsufficientCredits(uint256 tokenId, uint256 balance, uint256 requested);

    function setTrustedForwarder(address forwarder) external {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.appStorage().trustedForwarder = forwarder;
        emit TrustedForwarderSet(forwarder);
    }

    /// ERC-2771: the forwarder checks this before it relays a request to the Diamond.
    function isTrustedForwarder(address forwarder) public view returns (bool) {
        return forwarder != address(0) && forwarder == LibGemforce.appStorage().trustedForwarder;
    }

    function initializeCarbonCredits(uint256 tokenId, uint256 initialBalance) external {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        LibERC721.ownerOf(tokenId);
        if (l.carbonInitialized[tokenId]) revert AlreadyInitialized(tokenId);
        l.carbonInitialized[tokenId] = true;
        l.carbonBalances[tokenId] = initialBalance;
        emit CarbonCreditsInitialized(tokenId, initialBalance);
    }

    function retireCarbonCredits(uint256 tokenId, uint256 amount) external {
        address sender = msgSender();
        if (LibERC721.ownerOf(tokenId) != sender) revert NotTokenOwner(tokenId, sender);
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        uint256 balance = l.carbonBalances[tokenId];
        if (balance < amount) revert InsufficientCredits(tokenId, balance, amount);
        l.carbonBalances[tokenId] = balance - amount;
        emit CarbonCreditsRetired(tokenId, amount, balance - amount);
    }

    function carbonCreditBalance(uint256 tokenId) external view returns (uint256) {
        return LibGemforce.appStorage().carbonBalances[tokenId];
    }

    /// The ERC-2771 sender: the last 20 bytes of calldata when the call comes from the trusted forwarder.
    function msgSender() internal view returns (address sender) {
        if (msg.data.length >= 20 && isTrustedForwarder(msg.sender)) {
            return address(bytes20(msg.data[msg.data.length - 20:]));
        }
        return msg.sender;
    }
}
