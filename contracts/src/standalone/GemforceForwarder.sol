// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC2771Forwarder} from "@openzeppelin/contracts/metatx/ERC2771Forwarder.sol";

/// OpenZeppelin's ERC-2771 forwarder, unchanged, with its EIP-712 domain name fixed to "GemforceForwarder".
contract GemforceForwarder is ERC2771Forwarder {
    constructor() ERC2771Forwarder("GemforceForwarder") {}
}
