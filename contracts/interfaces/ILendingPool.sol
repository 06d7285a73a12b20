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

    /// @notice Cash the pool can lend now, in base units of its asset.
    function availableLiquidity() external view returns (uint256);

    /// @notice Outstanding principal lent, in base units of its asset.
    function totalBorrowed() external view returns (uint256);

    /// @notice Current utilization (borrowed / (cash + borrowed)) in basis points.
    function utilizationBps() external view returns (uint32);

    /// @notice Lends `principal` for loan `loanId`: sends `principal - originationFee` to `receiver`; the fee
    /// stays in the pool. Only the CreditAggregator. Reverts with `RateBelowPoolModel` when `rateBps` is below
    /// `modelRateBps(principal)`, and with `InsufficientLiquidity` when cash is short.
    function fundLoan(uint256 loanId, address receiver, uint256 principal, uint256 originationFee, uint32 rateBps) external;

    /// @notice Books a repayment whose tokens the CreditAggregator has already moved into the pool.
    /// Only the CreditAggregator.
    function onRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid) external;
}
