// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @notice A settable Chainlink-style feed for devnets and tests. Deployed only by the devnet profile.
/// @dev While `updatedAt` is zero the feed reports the current block time, so that devnet time travel does not
/// make it stale; tests set an explicit time to exercise staleness.
contract MockPriceFeed is AggregatorV3Interface {
    uint8 public immutable decimals;
    int256 public answer;
    uint256 public startedAt;
    uint256 public updatedAt;
    uint80 public roundId;

    constructor(uint8 decimals_, int256 answer_) {
        decimals = decimals_;
        answer = answer_;
        roundId = 1;
    }

    /// @notice Sets the answer; the feed keeps following the block time unless `setTimes` fixed it.
    function setAnswer(int256 answer_) external {
        answer = answer_;
        ++roundId;
    }

    /// @notice Fixes `startedAt` and `updatedAt` (zero `updatedAt`: follow the block time again).
    function setTimes(uint256 startedAt_, uint256 updatedAt_) external {
        startedAt = startedAt_;
        updatedAt = updatedAt_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        uint256 updated = updatedAt == 0 ? block.timestamp : updatedAt;
        uint256 started = startedAt == 0 ? updated : startedAt;
        return (roundId, answer, started, updated, roundId);
    }
}
