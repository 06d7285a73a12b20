// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Every custom error of the creditmesh contracts, in one place.
interface Errors {
    // Signatures and offers
    error WrongChain(uint256 offerChainId, uint256 currentChainId);
    error OfferExpired(uint64 expiry, uint256 nowTimestamp);
    error AcceptanceExpired(uint64 deadline, uint256 nowTimestamp);
    error OfferAlreadyUsed(bytes32 offerDigest);
    error InvalidOfferSigner(address recovered);
    error InvalidAcceptanceSignature(address borrower);
    error InvalidAttestationSigner(address recovered);
    error AttestationExpired(uint64 expiry, uint256 nowTimestamp);
    error AttestationBorrowerMismatch(address attested, address borrower);
    error AttestationOfferMismatch(uint256 attestedNonce, uint256 offerNonce);
    error RepaymentExpired(uint64 deadline, uint256 nowTimestamp);
    error RepaymentNonceUsed(address borrower, uint256 nonce);
    error InvalidRepaymentSignature(address borrower);

    // Loans
    error InvalidOffer(string reason);
    error LoanNotActive(uint256 loanId);
    error NotPoolLoan(uint256 loanId);
    error NotTraditionalLoan(uint256 loanId);
    error NoSettlementAddress(bytes32 providerId);
    error NothingOwed(uint256 loanId);
    error ZeroAmount();
    error NotYetDefaultable(uint256 loanId, uint256 defaultableAt);
    error LoanHasRepayments(uint256 loanId);

    // Pool
    error AssetMismatch(address expected, address given);
    error RateBelowPoolModel(uint32 offeredBps, uint32 modelBps);
    error InsufficientLiquidity(uint256 requested, uint256 available);
    error InvalidRateModel();
    error PoolPaused();
    error InvalidReserveFactor(uint16 reserveFactorBps);
    error InsufficientReserves(uint256 requested, uint256 available);
    error NotCreditAggregator(address caller);
    error UnknownPool(address pool);
    error InvalidPool(address pool);
    error PoolAlreadyRegistered(address pool);
    error TermAboveMaximum(uint64 term, uint40 maxTerm);
    error InvalidMaxTerm(uint40 maxTerm);

    // Collateral, prices and liquidation
    error NotCollateralManager(address caller);
    error UnsupportedCollateral(address asset);
    error NoPriceFeed(address asset);
    error InvalidPrice(address feed, int256 answer);
    error StalePrice(address feed, uint256 updatedAt, uint256 nowTimestamp);
    error SequencerDown();
    error SequencerGracePeriodNotOver(uint256 upSince, uint256 gracePeriod);
    error LtvAboveAttestation(uint256 ltvBps, uint16 maxLtvBps);
    error LtvAboveCollateralLimit(uint256 ltvBps, uint16 limitBps);
    error SupplyCapExceeded(address asset, uint256 supplyCap, uint256 totalAfter);
    error InvalidCollateralParameters(uint16 ltvBps, uint16 liquidationThresholdBps, uint16 liquidationBonusBps);
    error InvalidFeedParameters(address feed, uint32 heartbeat);
    /// @dev fullCloseValue above MAX_FULL_CLOSE_VALUE, or minLeftoverValue above half of it.
    error InvalidLiquidationThresholds(uint128 fullCloseValue, uint128 minLeftoverValue);
    error InsufficientCollateral(uint256 requested, uint256 available);
    error HealthyPosition(uint256 healthFactor);
    error MustNotLeaveDust(uint256 debtLeftValue, uint256 collateralLeftValue);
    error LiquidationsPaused();
    error LiquidationHeld(uint256 loanId);
    error CreditAggregatorAlreadySet(address current);
    error NotBorrower(address caller, address borrower);
    error CollateralFrozen(address asset);
    error CollateralInUse(address asset, uint256 total);
    error LoanNotClosed(uint256 loanId);
    error NothingToClaim(uint256 loanId);

    // Governance
    error InvalidGracePeriod(uint64 gracePeriod);
}
