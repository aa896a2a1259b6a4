// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// A minimal on-chain identity: who controls it.
contract Identity {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }
}

/// Deploys identities; `IdentityCreated` comes from the factory's own address, not the Diamond's.
contract IdentityFactory {
    event IdentityCreated(address indexed owner, address indexed identity);

    function createIdentity(address owner) external returns (address identity) {
        identity = address(new Identity(owner));
        emit IdentityCreated(owner, identity);
    }
}
