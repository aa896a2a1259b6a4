// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDiamond} from "./IDiamond.sol";

/// Diamond storage and cut logic (a compact form of the EIP-2535 reference implementation).
library LibDiamond {
    bytes32 constant DIAMOND_STORAGE_POSITION = keccak256("diamond.standard.diamond.storage");

    struct FacetAddressAndPosition {
        address facetAddress;
        uint96 functionSelectorPosition;
    }

    struct FacetFunctionSelectors {
        bytes4[] functionSelectors;
        uint256 facetAddressPosition;
    }

    struct DiamondStorage {
        mapping(bytes4 => FacetAddressAndPosition) selectorToFacetAndPosition;
        mapping(address => FacetFunctionSelectors) facetFunctionSelectors;
        address[] facetAddresses;
        mapping(bytes4 => bool) supportedInterfaces;
        address contractOwner;
    }

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event DiamondCut(IDiamond.FacetCut[] _diamondCut, address _init, bytes _calldata);

    error NotContractOwner(address sender, address owner);
    error NoSelectorsInFacet();
    error NoCodeAt(address target);
    error SelectorExists(bytes4 selector);
    error SelectorMissing(bytes4 selector);
    error SameFacet(bytes4 selector);
    error ZeroFacetAddress();
    error InitFailed(address init, bytes data);

    function diamondStorage() internal pure returns (DiamondStorage storage ds) {
        bytes32 position = DIAMOND_STORAGE_POSITION;
        assembly {
            ds.slot := position
        }
    }

    function setContractOwner(address newOwner) internal {
        DiamondStorage storage ds = diamondStorage();
        address previousOwner = ds.contractOwner;
        ds.contractOwner = newOwner;
        emit OwnershipTransferred(previousOwner, newOwner);
    }

    function contractOwner() internal view returns (address) {
        return diamondStorage().contractOwner;
    }

    function enforceIsContractOwner() internal view {
        if (msg.sender != diamondStorage().contractOwner) {
            revert NotContractOwner(msg.sender, diamondStorage().contractOwner);
        }
    }

    function diamondCut(IDiamond.FacetCut[] memory cuts, address init, bytes memory data) internal {
        for (uint256 i; i < cuts.length; i++) {
            IDiamond.FacetCutAction action = cuts[i].action;
            if (action == IDiamond.FacetCutAction.Add) {
                addFunctions(cuts[i].facetAddress, cuts[i].functionSelectors);
            } else if (action == IDiamond.FacetCutAction.Replace) {
                replaceFunctions(cuts[i].facetAddress, cuts[i].functionSelectors);
            } else {
                removeFunctions(cuts[i].facetAddress, cuts[i].functionSelectors);
            }
        }
        emit DiamondCut(cuts, init, data);
        initializeDiamondCut(init, data);
    }

    function addFunctions(address facet, bytes4[] memory selectors) internal {
        if (selectors.length == 0) revert NoSelectorsInFacet();
        if (facet == address(0)) revert ZeroFacetAddress();
        DiamondStorage storage ds = diamondStorage();
        uint96 position = uint96(ds.facetFunctionSelectors[facet].functionSelectors.length);
        if (position == 0) addFacet(ds, facet);
        for (uint256 i; i < selectors.length; i++) {
            bytes4 selector = selectors[i];
            if (ds.selectorToFacetAndPosition[selector].facetAddress != address(0)) revert SelectorExists(selector);
            addFunction(ds, selector, position, facet);
            position++;
        }
    }

    function replaceFunctions(address facet, bytes4[] memory selectors) internal {
        if (selectors.length == 0) revert NoSelectorsInFacet();
        if (facet == address(0)) revert ZeroFacetAddress();
        DiamondStorage storage ds = diamondStorage();
        uint96 position = uint96(ds.facetFunctionSelectors[facet].functionSelectors.length);
        if (position == 0) addFacet(ds, facet);
        for (uint256 i; i < selectors.length; i++) {
            bytes4 selector = selectors[i];
            address oldFacet = ds.selectorToFacetAndPosition[selector].facetAddress;
            if (oldFacet == facet) revert SameFacet(selector);
            removeFunction(ds, oldFacet, selector);
            addFunction(ds, selector, position, facet);
            position++;
        }
    }

    function removeFunctions(address facet, bytes4[] memory selectors) internal {
        if (selectors.length == 0) revert NoSelectorsInFacet();
        // EIP-2535: the facet address of a Remove must be zero.
        if (facet != address(0)) revert ZeroFacetAddress();
        DiamondStorage storage ds = diamondStorage();
        for (uint256 i; i < selectors.length; i++) {
            bytes4 selector = selectors[i];
            removeFunction(ds, ds.selectorToFacetAndPosition[selector].facetAddress, selector);
        }
    }

    function addFacet(DiamondStorage storage ds, address facet) internal {
        if (facet.code.length == 0) revert NoCodeAt(facet);
        ds.facetFunctionSelectors[facet].facetAddressPosition = ds.facetAddresses.length;
        ds.facetAddresses.push(facet);
    }

    function addFunction(DiamondStorage storage ds, bytes4 selector, uint96 position, address facet) internal {
        ds.selectorToFacetAndPosition[selector].functionSelectorPosition = position;
        ds.facetFunctionSelectors[facet].functionSelectors.push(selector);
        ds.selectorToFacetAndPosition[selector].facetAddress = facet;
    }

    function removeFunction(DiamondStorage storage ds, address facet, bytes4 selector) internal {
        if (facet == address(0)) revert SelectorMissing(selector);
        uint256 position = ds.selectorToFacetAndPosition[selector].functionSelectorPosition;
        uint256 last = ds.facetFunctionSelectors[facet].functionSelectors.length - 1;
        if (position != last) {
            bytes4 lastSelector = ds.facetFunctionSelectors[facet].functionSelectors[last];
            ds.facetFunctionSelectors[facet].functionSelectors[position] = lastSelector;
            ds.selectorToFacetAndPosition[lastSelector].functionSelectorPosition = uint96(position);
        }
        ds.facetFunctionSelectors[facet].functionSelectors.pop();
        delete ds.selectorToFacetAndPosition[selector];
        if (last == 0) {
            uint256 lastFacetPosition = ds.facetAddresses.length - 1;
            uint256 facetPosition = ds.facetFunctionSelectors[facet].facetAddressPosition;
            if (facetPosition != lastFacetPosition) {
                address lastFacet = ds.facetAddresses[lastFacetPosition];
                ds.facetAddresses[facetPosition] = lastFacet;
                ds.facetFunctionSelectors[lastFacet].facetAddressPosition = facetPosition;
            }
            ds.facetAddresses.pop();
            delete ds.facetFunctionSelectors[facet].facetAddressPosition;
        }
    }

    function initializeDiamondCut(address init, bytes memory data) internal {
        if (init == address(0)) return;
        if (init.code.length == 0) revert NoCodeAt(init);
        (bool ok, bytes memory err) = init.delegatecall(data);
        if (!ok) {
            if (err.length > 0) {
                assembly {
                    revert(add(32, err), mload(err))
                }
            }
            revert InitFailed(init, data);
        }
    }
}
