// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDiamond} from "./IDiamond.sol";
import {LibDiamond} from "./LibDiamond.sol";

/// A minimal EIP-2535 Diamond: it routes every call to the facet registered for its selector.
/// The constructor installs `diamondCut` from the given facet; everything else comes through cuts.
contract Diamond {
    error FunctionNotFound(bytes4 selector);

    constructor(address owner, address diamondCutFacet) payable {
        LibDiamond.setContractOwner(owner);
        IDiamond.FacetCut[] memory cut = new IDiamond.FacetCut[](1);
        bytes4[] memory selectors = new bytes4[](1);
        selectors[0] = bytes4(keccak256("diamondCut((address,uint8,bytes4[])[],address,bytes)"));
        cut[0] = IDiamond.FacetCut({
            facetAddress: diamondCutFacet,
            action: IDiamond.FacetCutAction.Add,
            functionSelectors: selectors
        });
        LibDiamond.diamondCut(cut, address(0), "");
    }

    fallback() external payable {
        address facet = LibDiamond.diamondStorage().selectorToFacetAndPosition[msg.sig].facetAddress;
        if (facet == address(0)) revert FunctionNotFound(msg.sig);
        assembly {
            calldatacopy(0, 0, calldatasize())
            let result := delegatecall(gas(), facet, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch result
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }

    receive() external payable {}
}
