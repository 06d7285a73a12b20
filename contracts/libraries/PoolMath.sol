// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @notice Pure pool math; each name carries its rounding direction, always in the lenders' and the protocol's favour.
library PoolMath {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant YEAR = 365 days;

    /// @notice Interest accrued over `elapsed` seconds by an issuance rate (sum of principal × rateBps), rounded down.
    function accruedDown(uint256 issuanceRate, uint256 elapsed) internal pure returns (uint256) {
        return Math.mulDiv(issuanceRate, elapsed, BPS * YEAR);
    }

    /// @notice The reserve's share of `interest`, rounded up.
    function reserveShareUp(uint256 interest, uint256 reserveFactorBps) internal pure returns (uint256) {
        return Math.mulDiv(interest, reserveFactorBps, BPS, Math.Rounding.Ceil);
    }

    /// @notice The lenders' share of `interest` (what the reserve does not take), rounded down.
    function lenderShareDown(uint256 interest, uint256 reserveFactorBps) internal pure returns (uint256) {
        return Math.mulDiv(interest, BPS - reserveFactorBps, BPS);
    }

    /// @notice borrowed / (borrowed + cash) in basis points, rounded up.
    function utilizationBpsUp(uint256 borrowed, uint256 cash) internal pure returns (uint256) {
        uint256 total = borrowed + cash;
        return total == 0 ? 0 : Math.mulDiv(borrowed, BPS, total, Math.Rounding.Ceil);
    }

    /// @notice The utilization-kinked annual rate in basis points, rounded up.
    function kinkedRateBpsUp(uint256 base, uint256 slope1, uint256 slope2, uint256 optimal, uint256 utilization)
        internal
        pure
        returns (uint256)
    {
        if (utilization <= optimal) return base + Math.mulDiv(slope1, utilization, optimal, Math.Rounding.Ceil);
        return base + slope1 + Math.mulDiv(slope2, utilization - optimal, BPS - optimal, Math.Rounding.Ceil);
    }

    function saturatingSub(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a - b : 0;
    }
}
