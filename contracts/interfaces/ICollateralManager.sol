// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Holds each loan's collateral. The CreditAggregator moves collateral in at origination and releases
/// it on full repayment; anyone may add collateral to an active loan.
interface ICollateralManager {
    /// @notice Emitted when collateral is added to a loan (at origination or later).
    event CollateralAdded(uint256 indexed loanId, address indexed from, address indexed asset, uint256 amount);
    /// @notice Emitted when collateral leaves a loan (released on repayment, or withdrawn).
    event CollateralRemoved(uint256 indexed loanId, address indexed to, address indexed asset, uint256 amount);
    /// @notice Emitted when a loan is liquidated: `debtRepaid` in the loan asset, `collateralSeized` includes the bonus.
    event LoanLiquidated(uint256 indexed loanId, address indexed liquidator, uint256 debtRepaid, uint256 collateralSeized);
    /// @notice Emitted when a loan's collateral ran out with `amount` of debt still owed.
    event BadDebtRecorded(uint256 indexed loanId, address indexed asset, uint256 amount);
    /// @notice Emitted when a collateral asset's risk parameters change (through governance). Basis points.
    event CollateralParametersChanged(
        address indexed asset, uint16 ltvBps, uint16 liquidationThresholdBps, uint16 liquidationBonusBps, uint256 supplyCap
    );

    /// @notice Books collateral the CreditAggregator has already moved into this contract. Only the CreditAggregator.
    function onCollateralDeposited(uint256 loanId, address from, address asset, uint256 amount) external;

    /// @notice Sends all of a loan's collateral to `to`. Only the CreditAggregator.
    function release(uint256 loanId, address to) external;

    /// @notice Adds `amount` of the loan's collateral asset, pulled from the caller.
    function addCollateral(uint256 loanId, uint256 amount) external;

    /// @notice The collateral asset and amount held for `loanId`.
    function collateralOf(uint256 loanId) external view returns (address asset, uint256 amount);
}
