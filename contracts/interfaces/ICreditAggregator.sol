// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Acceptance, CollateralPermit, Loan, LoanStatus, Offer, Repayment, RiskAttestation} from "./Types.sol";

/// @notice The loan registry and router: opens loans from signed offers, takes repayments, records defaults.
/// EIP-712 domain: name `creditmesh`, version `1`, this chain, this contract.
interface ICreditAggregator {
    /// @notice Emitted when a loan opens. `pool` is zero for a loan funded off-chain by `providerId`.
    event LoanOpened(
        uint256 indexed loanId,
        address indexed borrower,
        bytes32 indexed providerId,
        address pool,
        address asset,
        uint256 principal,
        uint32 rateBps,
        uint64 term,
        uint256 originationFee,
        address collateralAsset,
        uint256 collateralAmount,
        bytes32 termsHash,
        bytes32 offerDigest
    );
    /// @notice Emitted on every repayment, on-chain or recorded by the operator (`paymentRef` non-zero).
    event LoanRepaid(
        uint256 indexed loanId,
        address indexed payer,
        uint256 interestPaid,
        uint256 principalPaid,
        uint256 outstandingPrincipal,
        bytes32 paymentRef
    );
    /// @notice Emitted when a loan closes: paid in full (its collateral released, or left for the borrower to claim
    /// when the token refused the transfer), written off after a liquidation took all its collateral, or cancelled
    /// unfunded (after `LoanCancelled`).
    event LoanClosed(uint256 indexed loanId);
    /// @notice Emitted when the operator cancels a loan funded off-chain that its lender never paid out
    /// (`cancelUnfunded`), before `LoanClosed`: it ends with no debt and its collateral goes back to the borrower.
    event LoanCancelled(uint256 indexed loanId);
    /// @notice Emitted when the operator marks a loan in default after maturity plus the grace period.
    event LoanDefaulted(uint256 indexed loanId, uint256 outstandingPrincipal, uint256 accruedInterest);
    /// @notice Emitted when the grace period changes (through governance). Seconds.
    event GracePeriodChanged(uint64 oldGracePeriod, uint64 newGracePeriod);

    /// @notice Opens a loan from an offer signed by a quote signer and accepted by its borrower, with the
    /// borrower's risk attestation for that offer (same nonce). Pulls the collateral from the borrower (approved to
    /// this contract), and draws the principal from `offer.pool` (a registered pool) or records an off-chain funded
    /// loan. Consumes the offer's nonce for its signer. Only the platform's relayer (`RELAYER_ROLE`), so that an
    /// offer is used only after the platform's acceptance-time checks (sanctions re-screen, lender confirmation).
    /// @return loanId The new loan's id (sequential from 1).
    function openLoan(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature
    ) external returns (uint256 loanId);

    /// @notice Repays up to `amount` of a pool loan, active or in default, interest first; the caller pays. Returns
    /// what was applied. Never paused.
    function repay(uint256 loanId, uint256 amount) external returns (uint256 interestPaid, uint256 principalPaid);

    /// @notice Repays a pool loan from its borrower's balance of the debt asset, relayed by anyone (the platform, so
    /// that the borrower needs no ETH): `repay` of up to `repayment.amount`, paid by the loan's borrower. The
    /// borrower's EIP-712 `Repayment` signature (EOA or ERC-1271) must always verify and its nonce is used up, so no
    /// relayer can spend an allowance the borrower has standing at this contract without the borrower's consent to
    /// this loan, this amount, once. `permit` (EIP-2612, of the debt asset to this contract) is tried first and may
    /// fail (front-run and already used, or a wallet that cannot sign one): the transfer then needs an allowance in
    /// place. Never paused.
    function repayWithPermit(Repayment calldata repayment, bytes calldata signature, CollateralPermit calldata permit)
        external
        returns (uint256 interestPaid, uint256 principalPaid);

    /// @notice Repays everything owed on a pool loan, active or in default, and releases its collateral.
    function close(uint256 loanId) external;

    /// @notice Records a repayment of an off-chain funded loan, active or in default, made outside the chain;
    /// paying everything releases the collateral. Operator only.
    function recordOffchainRepayment(uint256 loanId, uint256 amount, bytes32 paymentRef) external;

    /// @notice Cancels an active loan funded off-chain (not a pool loan: `NotTraditionalLoan`) that its lender never
    /// paid out, with nothing repaid on it (`LoanHasRepayments`: no repayment recorded, no liquidation): its debt is
    /// dropped, it becomes `Cancelled` and its collateral is released to its borrower as a full repayment's is
    /// (left claimable when the token refuses the transfer). Operator only; not paused.
    function cancelUnfunded(uint256 loanId) external;

    /// @notice Marks a loan in default once `maturity + gracePeriod` has passed, and impairs a pool loan whose
    /// collateral no longer covers its debt. Operator only.
    function markDefault(uint256 loanId) external;

    /// @notice Emitted when a pool loan's expected loss is recognised in its pool (`impair`, `markDefault`): the
    /// debt (principal and interest to now), what a liquidation of its collateral at current prices would recover
    /// (the collateral's value less the liquidation bonus) and the difference, zero when the collateral covers the
    /// debt. Not a status: the loan stays active or in default.
    event LoanImpaired(uint256 indexed loanId, uint256 debt, uint256 recoverable, uint256 expectedLoss);

    /// @notice Recognises a pool loan's expected loss in its pool's total assets at once (Maple's impairment), so
    /// that no lender exits at a price that ignores a known loss. Anyone may call it, for a loan active or in
    /// default, as often as prices move; a loan whose collateral covers its debt gets (back) to zero. Repayments
    /// reduce the impairment; the liquidation that settles the loan replaces it with the realised loss.
    function impair(uint256 loanId) external returns (uint256 expectedLoss);

    /// @notice The EIP-712 digest of `offer` under this contract's domain (what the quote signer signs).
    function offerDigest(Offer calldata offer) external view returns (bytes32);

    /// @notice The EIP-712 digest of `acceptance` under this contract's domain (what the borrower signs).
    function acceptanceDigest(Acceptance calldata acceptance) external view returns (bytes32);

    /// @notice Whether `signer`'s nonce `nonce` has been used (or invalidated): a quote signer's offer nonce, or a
    /// borrower's repayment nonce (`Repayment.nonce`).
    function nonceUsed(address signer, uint256 nonce) external view returns (bool);

    /// @notice Emitted when a quote signer cancels its outstanding offers: the nonces `(word << 8) + i` for each
    /// bit `i` set in `mask`.
    event NoncesInvalidated(address indexed signer, uint256 word, uint256 mask);

    /// @notice Marks the caller's offer nonces `(word << 8) + i` for each bit `i` of `mask` used, so the offers
    /// signed under them can never open a loan (as Permit2's `invalidateUnorderedNonces`). A quote signer cancels
    /// its outstanding offers at once with it; it touches only the caller's own nonces.
    function invalidateNonces(uint256 word, uint256 mask) external;

    /// @notice Emitted when governance registers a LendingPool that offers may draw from.
    event PoolRegistered(address indexed pool, uint16 poolId);

    /// @notice The registry id of `pool` (zero: not registered).
    function poolId(address pool) external view returns (uint16);

    /// @notice The loan's current state (all zero for an unknown id).
    function getLoan(uint256 loanId) external view returns (Loan memory);

    /// @notice Outstanding principal and interest accrued to now (simple interest per second, rounded up).
    function amountOwed(uint256 loanId) external view returns (uint256 principal, uint256 interest);

    /// @notice Emitted when a loan's remaining debt is written off because its collateral ran out in a liquidation.
    event LoanWrittenOff(uint256 indexed loanId, uint256 principal, uint256 interest);

    /// @notice `openLoan` preceded by an EIP-2612 `permit` of the collateral token from the borrower to this
    /// contract. A permit that fails (for instance, front-run and already used) is ignored; the collateral transfer
    /// then needs an allowance that is already in place.
    function openLoanWithPermit(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature,
        CollateralPermit calldata permit
    ) external returns (uint256 loanId);

    /// @notice What the CollateralManager needs to price a loan's debt: borrower, asset, outstanding principal,
    /// interest accrued to now (rounded up; frozen once the loan is in default), status, and the risk
    /// attestation's LTV limit stored at opening (basis points).
    function debtOf(uint256 loanId)
        external
        view
        returns (
            address borrower,
            address asset,
            uint256 principal,
            uint256 interest,
            LoanStatus status,
            uint16 maxLtvBps
        );

    /// @notice Books `debtRepaid` paid by `liquidator` (interest first) against the loan and, for a pool loan, its
    /// pool; when `collateralExhausted`, writes the rest off as bad debt. Returns the payee (`liquidationPayee`),
    /// which the CollateralManager has already paid in the same transaction. Only the CollateralManager.
    function settleLiquidation(uint256 loanId, address liquidator, uint256 debtRepaid, bool collateralExhausted)
        external
        returns (address payee, uint256 badDebt);

    /// @notice Where a liquidator of `loanId` pays: its pool, or for a loan funded off-chain its provider's settlement
    /// address (reverts with `NoSettlementAddress` when governance has set none). The CollateralManager pulls the
    /// payment there before `settleLiquidation` books it.
    function liquidationPayee(uint256 loanId) external view returns (address payee);

    /// @notice Emitted when governance sets where liquidators pay for loans funded off-chain by `providerId`.
    event SettlementAddressChanged(bytes32 indexed providerId, address account);

    /// @notice Pauses opening loans. Guardian only; only the admin (the timelock) unpauses.
    function pause() external;

    /// @notice Lifts the pause. Admin (the timelock) only.
    function unpause() external;
}
