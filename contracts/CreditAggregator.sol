// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICollateralManager} from "./interfaces/ICollateralManager.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {ICreditScoringOracle} from "./interfaces/ICreditScoringOracle.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";
import {Acceptance, Loan, LoanStatus, Offer, RiskAttestation} from "./interfaces/Types.sol";
import {InterestMath} from "./libraries/InterestMath.sol";
import {TypedDataHash} from "./libraries/TypedDataHash.sol";

/// @notice Loan registry and router. See ICreditAggregator.
contract CreditAggregator is ICreditAggregator, AccessControl, EIP712, Pausable {
    using SafeERC20 for IERC20;

    bytes32 public constant QUOTE_SIGNER_ROLE = keccak256("QUOTE_SIGNER_ROLE");
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    ICollateralManager public immutable collateralManager;
    ICreditScoringOracle public immutable scoringOracle;

    uint64 public gracePeriod;
    uint256 public loanCount;

    mapping(uint256 loanId => Loan) private _loans;
    mapping(bytes32 digest => bool) public offerUsed;

    constructor(
        address admin,
        ICollateralManager collateralManager_,
        ICreditScoringOracle scoringOracle_,
        uint64 gracePeriod_
    ) EIP712("creditmesh", "1") {
        collateralManager = collateralManager_;
        scoringOracle = scoringOracle_;
        gracePeriod = gracePeriod_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        emit GracePeriodChanged(0, gracePeriod_);
    }

    // ------------------------------------------------------------------ opening

    /// @inheritdoc ICreditAggregator
    function openLoan(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature
    ) external whenNotPaused returns (uint256 loanId) {
        Offer calldata offer = acceptance.offer;
        bytes32 digest = _checkSignatures(acceptance, offerSignature, acceptanceSignature);
        _checkTerms(offer);
        if (attestation.borrower != offer.borrower) {
            revert Errors.AttestationBorrowerMismatch(attestation.borrower, offer.borrower);
        }
        scoringOracle.validateAttestation(attestation, attestationSignature);

        offerUsed[digest] = true;
        loanId = ++loanCount;
        _loans[loanId] = Loan({
            borrower: offer.borrower,
            rateBps: offer.rateBps,
            startTime: uint64(block.timestamp),
            pool: offer.pool,
            maturity: uint64(block.timestamp) + offer.term,
            status: LoanStatus.Active,
            asset: offer.asset,
            lastAccrual: uint64(block.timestamp),
            collateralAsset: offer.collateralAsset,
            providerId: offer.providerId,
            principal: offer.principal,
            outstandingPrincipal: offer.principal,
            accruedInterest: 0,
            originationFee: offer.originationFee,
            termsHash: offer.termsHash
        });
        _emitOpened(loanId, offer, digest);

        IERC20(offer.collateralAsset).safeTransferFrom(offer.borrower, address(collateralManager), offer.collateralAmount);
        collateralManager.onCollateralDeposited(loanId, offer.borrower, offer.collateralAsset, offer.collateralAmount);
        if (offer.pool != address(0)) {
            ILendingPool(offer.pool).fundLoan(loanId, offer.borrower, offer.principal, offer.originationFee, offer.rateBps);
        }
    }

    function _checkSignatures(Acceptance calldata acceptance, bytes calldata offerSignature, bytes calldata acceptanceSignature)
        private
        view
        returns (bytes32 digest)
    {
        Offer calldata offer = acceptance.offer;
        if (offer.chainId != block.chainid) revert Errors.WrongChain(offer.chainId, block.chainid);
        if (block.timestamp > offer.expiry) revert Errors.OfferExpired(offer.expiry, block.timestamp);
        if (block.timestamp > acceptance.deadline) revert Errors.AcceptanceExpired(acceptance.deadline, block.timestamp);
        digest = offerDigest(offer);
        if (offerUsed[digest]) revert Errors.OfferAlreadyUsed(digest);
        (address signer,,) = ECDSA.tryRecover(digest, offerSignature);
        if (signer == address(0) || !hasRole(QUOTE_SIGNER_ROLE, signer)) revert Errors.InvalidOfferSigner(signer);
        if (!SignatureChecker.isValidSignatureNow(offer.borrower, acceptanceDigest(acceptance), acceptanceSignature)) {
            revert Errors.InvalidAcceptanceSignature(offer.borrower);
        }
    }

    function _checkTerms(Offer calldata offer) private view {
        if (offer.principal == 0) revert Errors.InvalidOffer("principal is zero");
        if (offer.originationFee >= offer.principal) revert Errors.InvalidOffer("fee not below principal");
        if (offer.term == 0) revert Errors.InvalidOffer("term is zero");
        if (offer.collateralAsset == address(0)) revert Errors.InvalidOffer("no collateral asset");
        if (offer.pool != address(0)) {
            address poolAsset = IERC4626(offer.pool).asset();
            if (poolAsset != offer.asset) revert Errors.AssetMismatch(poolAsset, offer.asset);
        }
    }

    function _emitOpened(uint256 loanId, Offer calldata offer, bytes32 digest) private {
        emit LoanOpened(
            loanId,
            offer.borrower,
            offer.providerId,
            offer.pool,
            offer.asset,
            offer.principal,
            offer.rateBps,
            offer.term,
            offer.originationFee,
            offer.collateralAsset,
            offer.collateralAmount,
            offer.termsHash,
            digest
        );
    }

    // ------------------------------------------------------------------ repaying

    /// @inheritdoc ICreditAggregator
    function repay(uint256 loanId, uint256 amount) public returns (uint256 interestPaid, uint256 principalPaid) {
        Loan storage loan = _activeLoan(loanId);
        if (loan.pool == address(0)) revert Errors.NotPoolLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        (interestPaid, principalPaid) = _applyRepayment(loanId, loan, amount, msg.sender, bytes32(0));
        address pool = loan.pool;
        IERC20(loan.asset).safeTransferFrom(msg.sender, pool, interestPaid + principalPaid);
        ILendingPool(pool).onRepayment(loanId, principalPaid, interestPaid);
        if (loan.outstandingPrincipal == 0) collateralManager.release(loanId, loan.borrower);
    }

    /// @inheritdoc ICreditAggregator
    function close(uint256 loanId) external {
        (uint256 principal, uint256 interest) = amountOwed(loanId);
        repay(loanId, principal + interest);
    }

    /// @inheritdoc ICreditAggregator
    function recordOffchainRepayment(uint256 loanId, uint256 amount, bytes32 paymentRef) external onlyRole(OPERATOR_ROLE) {
        Loan storage loan = _activeLoan(loanId);
        if (loan.pool != address(0)) revert Errors.NotTraditionalLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        _applyRepayment(loanId, loan, amount, msg.sender, paymentRef);
        if (loan.outstandingPrincipal == 0) collateralManager.release(loanId, loan.borrower);
    }

    /// @inheritdoc ICreditAggregator
    function markDefault(uint256 loanId) external onlyRole(OPERATOR_ROLE) {
        Loan storage loan = _activeLoan(loanId);
        uint256 defaultableAt = uint256(loan.maturity) + gracePeriod;
        if (block.timestamp <= defaultableAt) revert Errors.NotYetDefaultable(loanId, defaultableAt);
        _accrue(loan);
        loan.status = LoanStatus.Defaulted;
        emit LoanDefaulted(loanId, loan.outstandingPrincipal, loan.accruedInterest);
    }

    /// @notice Pauses opening loans. Guardian only.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Lifts the pause. Admin (the timelock) only.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @notice Sets the grace period after maturity before a default may be marked. Admin (the timelock) only.
    function setGracePeriod(uint64 newGracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit GracePeriodChanged(gracePeriod, newGracePeriod);
        gracePeriod = newGracePeriod;
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ICreditAggregator
    function offerDigest(Offer calldata offer) public view returns (bytes32) {
        return _hashTypedDataV4(TypedDataHash.hash(offer));
    }

    /// @inheritdoc ICreditAggregator
    function acceptanceDigest(Acceptance calldata acceptance) public view returns (bytes32) {
        return _hashTypedDataV4(TypedDataHash.hash(acceptance));
    }

    /// @inheritdoc ICreditAggregator
    function getLoan(uint256 loanId) external view returns (Loan memory) {
        return _loans[loanId];
    }

    /// @inheritdoc ICreditAggregator
    function amountOwed(uint256 loanId) public view returns (uint256 principal, uint256 interest) {
        Loan storage loan = _loans[loanId];
        principal = loan.outstandingPrincipal;
        interest = loan.accruedInterest
            + InterestMath.simpleInterestUp(principal, loan.rateBps, block.timestamp - loan.lastAccrual);
    }

    // ------------------------------------------------------------------ internals

    function _activeLoan(uint256 loanId) private view returns (Loan storage loan) {
        loan = _loans[loanId];
        if (loan.status != LoanStatus.Active) revert Errors.LoanNotActive(loanId);
    }

    function _accrue(Loan storage loan) private {
        loan.accruedInterest +=
            InterestMath.simpleInterestUp(loan.outstandingPrincipal, loan.rateBps, block.timestamp - loan.lastAccrual);
        loan.lastAccrual = uint64(block.timestamp);
    }

    /// @dev Interest first, then principal; an amount above what is owed is capped.
    function _applyRepayment(uint256 loanId, Loan storage loan, uint256 amount, address payer, bytes32 paymentRef)
        private
        returns (uint256 interestPaid, uint256 principalPaid)
    {
        _accrue(loan);
        uint256 interest = loan.accruedInterest;
        interestPaid = amount < interest ? amount : interest;
        uint256 rest = amount - interestPaid;
        principalPaid = rest < loan.outstandingPrincipal ? rest : loan.outstandingPrincipal;
        if (interestPaid + principalPaid == 0) revert Errors.NothingOwed(loanId);
        loan.accruedInterest = interest - interestPaid;
        loan.outstandingPrincipal -= principalPaid;
        emit LoanRepaid(loanId, payer, interestPaid, principalPaid, loan.outstandingPrincipal, paymentRef);
        if (loan.outstandingPrincipal == 0) {
            loan.status = LoanStatus.Repaid;
            emit LoanClosed(loanId);
        }
    }
}
