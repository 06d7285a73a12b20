// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @notice Simple interest per second on an annual rate in basis points, 365-day year.
library InterestMath {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant YEAR = 365 days;

    /// @notice Interest on `principal` at `rateBps` for `elapsed` seconds, rounded up (in the lender's favour).
    function simpleInterestUp(uint256 principal, uint32 rateBps, uint256 elapsed) internal pure returns (uint256) {
        return Math.mulDiv(principal, uint256(rateBps) * elapsed, BPS * YEAR, Math.Rounding.Ceil);
    }
}
