// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDiamondCut} from "../diamond/IDiamond.sol";
import {LibDiamond} from "../diamond/LibDiamond.sol";

contract DiamondCutFacet is IDiamondCut {
    function diamondCut(FacetCut[] calldata _diamondCut, address _init, bytes calldata _calldata) external override {
        LibDiamond.enforceIsContractOwner();
        LibDiamond.diamondCut(_diamondCut, _init, _calldata);
    }
}
