// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice A DeFi lending pool: an ERC-4626 vault for lenders whose cash funds fixed-rate loans opened through
/// the CreditAggregator. A new loan locks the rate of the pool's utilization-kinked model for its size.
interface ILendingPool {
    /// @notice Emitted when a loan draws principal from the pool.
    event LoanFunded(uint256 indexed loanId, address indexed receiver, uint256 principal, uint256 originationFee, uint32 rateBps);
    /// @notice Emitted when a repayment of a pool loan reaches the pool.
    event LoanRepaymentReceived(uint256 indexed loanId, uint256 principalPaid, uint256 interestPaid);
    /// @notice Emitted when the rate model changes (through governance). All values in basis points.
    event RateModelChanged(uint32 baseRateBps, uint32 slope1Bps, uint32 slope2Bps, uint32 optimalUtilizationBps);

    /// @notice The annual rate in basis points the model sets for a new loan of `extraBorrow` base units, that
    /// is, at the utilization the pool would have after lending it.
    function modelRateBps(uint256 extraBorrow) external view returns (uint32);

    /// @notice The CreditAggregator, the only contract that may lend from the pool.
    function creditAggregator() external view returns (address);

    /// @notice Cash the pool can lend now, in base units of its asset.
    function availableLiquidity() external view returns (uint256);

    /// @notice Outstanding principal lent, in base units of its asset.
    function totalBorrowed() external view returns (uint256);

    /// @notice Current utilization (borrowed / (cash + borrowed)) in basis points.
    function utilizationBps() external view returns (uint32);

    /// @notice Lends `principal` for loan `loanId` of `term` seconds: sends `principal - originationFee` to
    /// `receiver`; the fee stays in the pool and vests to the lenders linearly over about the term (`unvestedFees`).
    /// Only the CreditAggregator. Reverts with `TermAboveMaximum` above `maxTermSeconds`, `RateBelowPoolModel`
    /// when `rateBps` is below `modelRateBps(principal)`, `InsufficientLiquidity` when cash is short, and
    /// OpenZeppelin's `EnforcedPause` while the pool is paused.
    function fundLoan(
        uint256 loanId,
        address receiver,
        uint256 principal,
        uint256 originationFee,
        uint32 rateBps,
        uint64 term
    ) external;

    /// @notice Origination fees received and not yet earned: counted out of `totalAssets`, released linearly.
    function unvestedFees() external view returns (uint256);

    /// @notice Falls in the impairments (repayments, price recoveries, loans closed, a write-off smaller than the
    /// loss expected) not yet credited to the lenders: counted out of `totalAssets`, released linearly over about
    /// `IMPAIRMENT_REVERSAL_VESTING`; a rise in an impairment takes its amount back out of them before it lowers the
    /// share price.
    function unvestedImpairmentReversals() external view returns (uint256);

    /// @notice The longest term, seconds, of a loan the pool funds.
    function maxTermSeconds() external view returns (uint40);

    /// @notice Emitted when the longest term changes (through governance). Seconds.
    event MaxTermChanged(uint40 maxTermSeconds);

    /// @notice Books a repayment whose tokens the CreditAggregator has already moved into the pool.
    /// Only the CreditAggregator.
    function onRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid) external;

    /// @notice Emitted when a pool loan is marked in default: its interest stops accruing for the lenders.
    event LoanDefaultRecorded(uint256 indexed loanId, uint256 outstandingPrincipal);
    /// @notice Emitted when a loan's remaining debt is written off: the lenders bear the loss.
    event LossRealized(uint256 indexed loanId, uint256 principalLost, uint256 interestLost);
    /// @notice Emitted when the reserve factor changes (through governance). Basis points of interest paid.
    event ReserveFactorChanged(uint16 reserveFactorBps);
    /// @notice Emitted when reserves leave the pool (through governance).
    event ReservesWithdrawn(address indexed to, uint256 amount);

    /// @notice Books a borrower's repayment of a loan at `rateBps` whose tokens the CreditAggregator has already
    /// moved into the pool: the principal leaves the pool's accrual, the interest's reserve share goes to reserves,
    /// and the loan's impairment falls by what was paid (the fall vests: `unvestedImpairmentReversals`). Only the
    /// CreditAggregator.
    function onRepaymentAtRate(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps)
        external;

    /// @notice Stops the accrual of a defaulted loan's `outstandingPrincipal` at `rateBps`. Only the CreditAggregator.
    function onDefault(uint256 loanId, uint256 outstandingPrincipal, uint32 rateBps) external;

    /// @notice Books a liquidator's repayment, which the CollateralManager has already moved into the pool, at
    /// `rateBps` (zero for a loan in default); unlike a borrower's repayment it leaves the loan's impairment as it is
    /// (the collateral that paid it is gone). Only the CreditAggregator.
    function onLiquidation(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps) external;

    /// @notice Writes off a loan's remaining principal and interest and ends its impairment (what the impairment
    /// expected beyond the lenders' loss vests); `rateBps` is the rate still accruing (zero for a loan already in
    /// default). Only the CreditAggregator.
    function onLoss(uint256 loanId, uint256 principalLost, uint256 interestLost, uint32 rateBps) external;

    /// @notice Emitted when a loan's impairment (its expected loss, counted out of `totalAssets`) changes.
    event ImpairmentChanged(uint256 indexed loanId, uint256 impairment);

    /// @notice Sets a loan's impairment to `expectedLoss`: a rise counts at once, a fall vests
    /// (`unvestedImpairmentReversals`). Only the CreditAggregator (`impair`, `markDefault`, a loan closed).
    function onImpairment(uint256 loanId, uint256 expectedLoss) external;

    /// @notice Interest the pool's open loans owe it, accrued to now from the sum of their locked rates (rounded down).
    function expectedInterest() external view returns (uint256);

    /// @notice Interest set aside for the protocol (part of the cash, not of the lenders' assets).
    function reserves() external view returns (uint256);

    /// @notice Share of interest paid that goes to reserves, basis points.
    function reserveFactorBps() external view returns (uint16);
}
