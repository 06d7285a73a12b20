// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @notice Pure valuation and liquidation math. Values are USD with 8 decimals (the feeds' base currency); every
/// function names its rounding direction, chosen against the party that could profit: collateral is valued down,
/// debt up, and a liquidator gets collateral rounded down for debt rounded up.
library CollateralMath {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant WAD = 1e18;

    /// @notice USD value (8 decimals) of `amount` base units of a token with `unit` = 10**decimals, rounded down.
    function valueDown(uint256 amount, uint256 price, uint256 unit) internal pure returns (uint256) {
        return Math.mulDiv(amount, price, unit);
    }

    /// @notice USD value (8 decimals) of `amount` base units, rounded up.
    function valueUp(uint256 amount, uint256 price, uint256 unit) internal pure returns (uint256) {
        return Math.mulDiv(amount, price, unit, Math.Rounding.Ceil);
    }

    /// @notice Loan-to-value in basis points, rounded up; `type(uint256).max` against worthless collateral.
    function ltvBpsUp(uint256 debtValue, uint256 collateralValue) internal pure returns (uint256) {
        if (collateralValue == 0) return debtValue == 0 ? 0 : type(uint256).max;
        return Math.mulDiv(debtValue, BPS, collateralValue, Math.Rounding.Ceil);
    }

    /// @notice Health factor (18 decimals), rounded down: collateral value times the liquidation threshold over
    /// the debt value; `type(uint256).max` without debt.
    function healthFactorDown(uint256 collateralValue, uint256 thresholdBps, uint256 debtValue)
        internal
        pure
        returns (uint256)
    {
        if (debtValue == 0) return type(uint256).max;
        return Math.mulDiv(collateralValue * thresholdBps, WAD, debtValue * BPS);
    }

    /// @notice Collateral (base units) worth `debt` (base units) plus `bonusBps`, rounded down.
    function collateralForDebtDown(
        uint256 debt,
        uint256 debtPrice,
        uint256 debtUnit,
        uint256 collateralPrice,
        uint256 collateralUnit,
        uint256 bonusBps
    ) internal pure returns (uint256) {
        uint256 base = Math.mulDiv(debt * debtPrice, collateralUnit, collateralPrice * debtUnit);
        return Math.mulDiv(base, BPS + bonusBps, BPS);
    }

    /// @notice Debt (base units) whose value plus `bonusBps` buys `collateral` (base units), rounded down: what a
    /// liquidation of `collateral` recovers at most.
    function debtForCollateralDown(
        uint256 collateral,
        uint256 collateralPrice,
        uint256 collateralUnit,
        uint256 debtPrice,
        uint256 debtUnit,
        uint256 bonusBps
    ) internal pure returns (uint256) {
        uint256 base = Math.mulDiv(collateral * collateralPrice, debtUnit, debtPrice * collateralUnit);
        return Math.mulDiv(base, BPS, BPS + bonusBps);
    }

    /// @notice Debt (base units) whose value plus `bonusBps` buys `collateral` (base units), rounded up.
    function debtForCollateralUp(
        uint256 collateral,
        uint256 collateralPrice,
        uint256 collateralUnit,
        uint256 debtPrice,
        uint256 debtUnit,
        uint256 bonusBps
    ) internal pure returns (uint256) {
        uint256 base = Math.mulDiv(collateral * collateralPrice, debtUnit, debtPrice * collateralUnit, Math.Rounding.Ceil);
        return Math.mulDiv(base, BPS, BPS + bonusBps, Math.Rounding.Ceil);
    }
}
