// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LibDiamond} from "../diamond/LibDiamond.sol";

contract OwnershipFacet {
    function owner() external view returns (address) {
        return LibDiamond.contractOwner();
    }

    function transferOwnership(address newOwner) external {
        LibDiamond.enforceIsContractOwner();
        LibDiamond.setContractOwner(newOwner);
    }
}
