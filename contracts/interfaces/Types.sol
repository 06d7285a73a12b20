// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice A lender's offer, signed with EIP-712 by the platform's quote signer.
/// @dev Units: amounts in token base units, `rateBps` annual simple interest in basis points (365-day year),
/// `term` and `expiry` in seconds. `pool` is the LendingPool that funds the loan, or zero for a loan funded
/// off-chain by the provider named by `providerId`. `termsHash` is keccak256 of the RFC 8785 canonical JSON of
/// the offer's Truth in Lending disclosure. The offer is single-use: its `nonce` is consumed for its signer on use
/// (a bitmap per quote signer, so nonces issued in sequence share storage words).
struct Offer {
    bytes32 providerId;
    address pool;
    address borrower;
    address asset;
    uint256 principal;
    uint32 rateBps;
    uint64 term;
    uint256 originationFee;
    address collateralAsset;
    uint256 collateralAmount;
    uint256 chainId;
    bytes32 termsHash;
    uint64 expiry;
    uint256 nonce;
}

/// @notice The borrower's acceptance of an offer, signed with EIP-712 by the borrower (EOA or ERC-1271 wallet).
/// @dev The offer is nested so that a wallet shows the borrower every term it signs.
struct Acceptance {
    Offer offer;
    uint64 deadline;
}

/// @notice The risk decision for a borrower, signed with EIP-712 by the platform's risk signer.
/// @dev `grade` is 1 = A ... 5 = E; `maxLtvBps` the highest loan-to-value the decision allows, for the life of the
/// loan (stored with it and enforced on every collateral withdrawal); `decisionHash` is keccak256 of the canonical
/// JSON of the stored risk decision. `nonce` is the nonce of the offer it is attached to: `openLoan` refuses it
/// with any other offer, and it is single-use because that nonce is consumed (a request's quotes on one chain
/// share one nonce, so one attestation serves all of them).
struct RiskAttestation {
    address borrower;
    uint8 grade;
    uint16 maxLtvBps;
    uint64 expiry;
    bytes32 decisionHash;
    uint256 nonce;
}

/// @notice Lifecycle of a loan. `Repaid`: paid in full, collateral released (or waiting to be claimed).
/// `Cancelled`: a loan funded off-chain whose lender never paid the principal out, ended by the operator
/// (`cancelUnfunded`) with no debt, its collateral released like a repaid loan's. New values go at the end.
enum LoanStatus {
    None,
    Active,
    Repaid,
    Defaulted,
    Liquidated,
    Cancelled
}

/// @notice A loan as the CreditAggregator reports it (`getLoan`): its current state. The terms fixed at opening
/// that no later operation reads (principal, origination fee, provider id, terms hash, start) are in `LoanOpened`.
/// @dev `pool` is zero for a loan funded off-chain; `accruedInterest` is interest accrued up to `lastAccrual` and
/// not yet paid; `collateralAsset`/`collateralAmount` are what the CollateralManager holds for the loan;
/// `maxLtvBps` is the risk attestation's limit, which with the collateral asset's own LTV caps every withdrawal.
struct Loan {
    address borrower;
    address pool;
    address asset;
    uint32 rateBps;
    uint64 maturity;
    uint64 lastAccrual;
    LoanStatus status;
    uint256 outstandingPrincipal;
    uint256 accruedInterest;
    address collateralAsset;
    uint256 collateralAmount;
    uint16 maxLtvBps;
}

/// @notice A borrower's consent to one relayed repayment (`repayWithPermit`), signed with EIP-712 by the loan's
/// borrower (EOA or ERC-1271 wallet).
/// @dev `amount` is the most to pay, in the debt asset's base units (an amount above what is owed is capped, so
/// `type(uint256).max` pays everything and closes the loan); `nonce` is single-use, from the borrower's own bitmap of
/// nonces (`nonceUsed(borrower, nonce)`, cancellable with `invalidateNonces`); `deadline` in seconds.
struct Repayment {
    uint256 loanId;
    uint256 amount;
    uint256 nonce;
    uint64 deadline;
}

/// @notice An EIP-2612 permit signed by the borrower for the CreditAggregator: of the collateral token
/// (`openLoanWithPermit`) or of the debt asset (`repayWithPermit`).
/// @dev `value` is the allowance granted; `deadline` the permit's expiry (seconds).
struct CollateralPermit {
    uint256 value;
    uint256 deadline;
    uint8 v;
    bytes32 r;
    bytes32 s;
}
