// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Holds each loan's collateral. The CreditAggregator moves collateral in at origination and releases
/// it on full repayment; anyone may add collateral to a loan whose collateral is still held here (active, in
/// default, or closed with its collateral waiting to be claimed).
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

    /// @notice Opens loan `loanId`'s position with collateral the CreditAggregator has already moved into this
    /// contract from `borrower`, within the asset's supply cap. Reverts with `LtvAboveAttestation` when the
    /// loan-to-value of `debt` of `debtAsset` at current prices is above `attestedMaxLtvBps` (the borrower's risk
    /// attestation), and with `LtvAboveCollateralLimit` above the asset's own LTV. Only the CreditAggregator.
    function openPosition(
        uint256 loanId,
        address borrower,
        address asset,
        uint256 amount,
        address debtAsset,
        uint256 debt,
        uint16 attestedMaxLtvBps
    ) external;

    /// @notice Sends all of a closed loan's collateral to `to` (its borrower); when the transfer fails the
    /// collateral stays claimable (`CollateralClaimable`, `claimCollateral`), so closing never fails on it. Only the
    /// CreditAggregator.
    function release(uint256 loanId, address to) external;

    /// @notice Emitted when a closed loan's collateral could not be sent to its borrower and awaits `claimCollateral`.
    event CollateralClaimable(uint256 indexed loanId, address indexed borrower, address indexed asset, uint256 amount);

    /// @notice Sends a repaid, liquidated or cancelled loan's remaining collateral to its borrower. Anyone may call it.
    function claimCollateral(uint256 loanId) external;

    /// @notice Emitted when a collateral asset is frozen (no new positions) or unfrozen.
    event CollateralFrozenChanged(address indexed asset, bool frozen);

    /// @notice Adds `amount` of the loan's collateral asset, pulled from the caller. Never limited by the supply
    /// cap or a freeze: a top-up only makes a position safer.
    function addCollateral(uint256 loanId, uint256 amount) external;

    /// @notice The collateral asset and amount held for `loanId`.
    function collateralOf(uint256 loanId) external view returns (address asset, uint256 amount);

    /// @notice Emitted when an asset's price feed changes (through governance). `heartbeat`: seconds a price stays fresh.
    event PriceFeedChanged(address indexed asset, address feed, uint32 heartbeat);
    /// @notice Emitted when the L2 sequencer-uptime feed changes (zero: none). `gracePeriod` in seconds.
    event SequencerFeedChanged(address feed, uint32 gracePeriod);
    /// @notice Emitted when the liquidation thresholds change (through governance), USD with 8 decimals:
    /// below `fullCloseValue` of debt or collateral a position may be liquidated in full; `minLeftoverValue`
    /// is the smallest debt and collateral a partial liquidation may leave.
    event LiquidationThresholdsChanged(uint256 fullCloseValue, uint256 minLeftoverValue);
    /// @notice Emitted when the liquidation pause flag changes.
    event LiquidationPauseChanged(bool paused);

    /// @notice Withdraws `amount` of a loan's collateral to `to`, keeping the loan-to-value within the lower of
    /// the risk attestation's limit (stored with the loan) and the asset's LTV: `LtvAboveAttestation` or
    /// `LtvAboveCollateralLimit` otherwise. Only the loan's borrower; blocked while paused.
    function withdrawCollateral(uint256 loanId, uint256 amount, address to) external;

    /// @notice Repays up to `repayAmount` of an unhealthy (health factor below 1) or defaulted loan's debt, paid
    /// by the caller (approved to this contract) to the loan's pool, or for a loan funded off-chain to its
    /// provider's settlement address, and sends the caller the collateral
    /// worth it plus the liquidation bonus. Close factor 50%, or 100% when the health factor is 0.95 or below, the
    /// position is small, or the loan is in default; a partial liquidation may not leave dust. Reverts with
    /// `LiquidationHeld` while the operator holds the loan's liquidation (`holdLiquidation`).
    function liquidate(uint256 loanId, uint256 repayAmount) external returns (uint256 debtRepaid, uint256 collateralSeized);

    /// @notice Emitted when the operator holds a loan's liquidation (`held`) or releases the hold.
    event LiquidationHoldChanged(uint256 indexed loanId, bool held);

    /// @notice Holds the liquidation of an active loan funded off-chain whose lender refused to pay the principal
    /// out, until the operator cancels it (`CreditAggregator.cancelUnfunded`): a liquidation would pay the lender
    /// that never lent from the borrower's collateral, and mark the loan repaid so that it could no longer be
    /// cancelled. Only an account holding the CreditAggregator's `OPERATOR_ROLE` (the one that cancels); a pool loan
    /// reverts with `NotTraditionalLoan`, a loan not active with `LoanNotActive`.
    function holdLiquidation(uint256 loanId) external;

    /// @notice Lifts a hold set by `holdLiquidation` (the lender paid out after all). Only an account holding the
    /// CreditAggregator's `OPERATOR_ROLE`.
    function releaseLiquidationHold(uint256 loanId) external;

    /// @notice Whether the operator holds the loan's liquidation.
    function liquidationHeld(uint256 loanId) external view returns (bool);

    /// @notice A loan's health factor, 18 decimals: collateral value times liquidation threshold over debt value.
    /// Reverts with `LoanNotActive` for a loan neither active nor in default (which always owes something).
    function healthFactor(uint256 loanId) external view returns (uint256);

    /// @notice The loan-to-value in basis points (rounded up) of `debtAmount` of `debtAsset` against
    /// `collateralAmount` of `collateralAsset`, and the collateral asset's LTV limit. Reverts for an unsupported
    /// collateral or a missing, stale or invalid price.
    function loanToValueBps(address debtAsset, uint256 debtAmount, address collateralAsset, uint256 collateralAmount)
        external
        view
        returns (uint256 ltvBps, uint16 maxLtvBps);

    /// @notice A loan's debt (principal and interest to now) and the part of it a liquidation of all its collateral
    /// at current prices would recover: the collateral's value less the liquidation bonus, in the debt asset,
    /// rounded down. For a loan active or in default.
    function recoverableValue(uint256 loanId) external view returns (uint256 debt, uint256 recoverable);

    /// @notice The USD price of one whole unit of `asset`, 8 decimals, after the staleness and sequencer checks.
    function priceOf(address asset) external view returns (uint256);
}
