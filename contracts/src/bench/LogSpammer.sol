// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// Emits many ERC-20-shaped `Transfer` logs cheaply, to build large synthetic chains for benchmarks and
/// crash tests (one contract, hundreds of thousands of logs).
contract LogSpammer {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function spam(uint256 count, uint256 seed) external {
        for (uint256 i; i < count; i++) {
            emit Transfer(address(uint160(seed + i)), msg.sender, seed * 1_000_000 + i);
        }
    }
}
