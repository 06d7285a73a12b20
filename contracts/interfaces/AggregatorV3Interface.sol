// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The subset of Chainlink's price-feed interface the CollateralManager reads. A sequencer-uptime feed
/// has the same shape: `answer` 0 means up, 1 down, and `startedAt` is when that status began.
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
