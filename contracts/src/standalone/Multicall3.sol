// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The Multicall3 interface (aggregate3 and the block getters) as deployed at
/// 0xcA11bde05977b3631167028862bE2a173976CA11 on most EVM chains. The test kit copies this contract's code
/// to that address on anvil, so gemgate's batched view calls run against the same ABI they meet on a real
/// network.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// Runs every call; a failing call with `allowFailure` is reported, one without reverts the whole batch.
    function aggregate3(Call3[] calldata calls) public payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            Call3 calldata call = calls[i];
            (bool success, bytes memory data) = call.target.call(call.callData);
            if (!success && !call.allowFailure) {
                assembly {
                    revert(add(data, 0x20), mload(data))
                }
            }
            returnData[i] = Result(success, data);
        }
    }

    function getBlockNumber() public view returns (uint256) {
        return block.number;
    }

    function getCurrentBlockTimestamp() public view returns (uint256) {
        return block.timestamp;
    }

    function getEthBalance(address account) public view returns (uint256) {
        return account.balance;
    }
}
