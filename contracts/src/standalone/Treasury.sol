// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// A bookkeeping treasury contract separate from the Diamond.
contract Treasury {
    struct Deposit {
        uint256 tokenId;
        uint256 amount;
    }

    event TreasuryDeposited(Deposit[] deposits);
    event TreasuryWithdrawn(uint256[] tokenIds, uint256 amount);

    mapping(uint256 => uint256) public balanceOf;

    error InsufficientBalance(uint256 tokenId, uint256 balance, uint256 requested);

    function deposit(Deposit[] calldata deposits) external {
        for (uint256 i; i < deposits.length; i++) {
            balanceOf[deposits[i].tokenId] += deposits[i].amount;
        }
        emit TreasuryDeposited(deposits);
    }

    /// Withdraws `amount` from each of `tokenIds`.
    function withdraw(uint256[] calldata tokenIds, uint256 amount) external {
        for (uint256 i; i < tokenIds.length; i++) {
            uint256 balance = balanceOf[tokenIds[i]];
            if (balance < amount) revert InsufficientBalance(tokenIds[i], balance, amount);
            balanceOf[tokenIds[i]] = balance - amount;
        }
        emit TreasuryWithdrawn(tokenIds, amount);
    }
}
