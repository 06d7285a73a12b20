// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICollateralManager} from "./interfaces/ICollateralManager.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {ICreditScoringOracle} from "./interfaces/ICreditScoringOracle.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";
import {Acceptance, CollateralPermit, Loan, LoanStatus, Offer, RiskAttestation} from "./interfaces/Types.sol";
import {InterestMath} from "./libraries/InterestMath.sol";
import {TypedDataHash} from "./libraries/TypedDataHash.sol";

/// @notice Loan registry and router. See ICreditAggregator.
/// @dev A loan is stored in six packed slots (the public `Loan` struct is assembled by `getLoan`): the asset of
/// a pool loan is its pool's asset and the collateral asset is the CollateralManager's, so neither is stored twice.
contract CreditAggregator is ICreditAggregator, AccessControl, EIP712, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant QUOTE_SIGNER_ROLE = keccak256("QUOTE_SIGNER_ROLE");
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    uint64 public constant MAX_GRACE_PERIOD = 365 days;
    uint64 private constant MAX_TERM = 100 * 365 days;

    struct StoredLoan {
        address borrower; // slot 0
        uint32 rateBps;
        uint40 startTime;
        LoanStatus status;
        address pool; // slot 1
        uint40 maturity;
        uint40 lastAccrual;
        uint128 outstandingPrincipal; // slot 2
        uint128 accruedInterest;
        uint128 principal; // slot 3
        uint128 originationFee;
        bytes32 providerId; // slot 4
        bytes32 termsHash; // slot 5
    }

    ICollateralManager public immutable collateralManager;
    ICreditScoringOracle public immutable scoringOracle;

    uint64 public gracePeriod;
    uint256 public loanCount;

    mapping(uint256 loanId => StoredLoan) private _loans;
    mapping(uint256 loanId => address) private _offchainAsset;
    mapping(bytes32 digest => bool) public offerUsed;

    constructor(
        address admin,
        ICollateralManager collateralManager_,
        ICreditScoringOracle scoringOracle_,
        uint64 gracePeriod_
    ) EIP712("creditmesh", "1") {
        collateralManager = collateralManager_;
        scoringOracle = scoringOracle_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setGracePeriod(gracePeriod_);
    }

    modifier onlyCollateralManager() {
        if (msg.sender != address(collateralManager)) revert Errors.NotCollateralManager(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ opening

    /// @inheritdoc ICreditAggregator
    function openLoan(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature
    ) external whenNotPaused nonReentrant returns (uint256 loanId) {
        return _openLoan(acceptance, offerSignature, acceptanceSignature, attestation, attestationSignature);
    }

    /// @inheritdoc ICreditAggregator
    function openLoanWithPermit(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature,
        CollateralPermit calldata permit
    ) external whenNotPaused nonReentrant returns (uint256 loanId) {
        Offer calldata offer = acceptance.offer;
        // A front-run permit has already set the allowance; the transfer below fails if it has not.
        try IERC20Permit(offer.collateralAsset).permit(
            offer.borrower, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch {}
        return _openLoan(acceptance, offerSignature, acceptanceSignature, attestation, attestationSignature);
    }

    function _openLoan(
        Acceptance calldata acceptance,
        bytes calldata offerSignature,
        bytes calldata acceptanceSignature,
        RiskAttestation calldata attestation,
        bytes calldata attestationSignature
    ) private returns (uint256 loanId) {
        Offer calldata offer = acceptance.offer;
        bytes32 digest = _checkSignatures(acceptance, offerSignature, acceptanceSignature);
        _checkTerms(offer);
        _checkRisk(offer, attestation, attestationSignature);

        offerUsed[digest] = true;
        loanId = ++loanCount;
        _loans[loanId] = StoredLoan({
            borrower: offer.borrower,
            rateBps: offer.rateBps,
            startTime: uint40(block.timestamp),
            status: LoanStatus.Active,
            pool: offer.pool,
            maturity: uint40(block.timestamp + offer.term),
            lastAccrual: uint40(block.timestamp),
            outstandingPrincipal: uint128(offer.principal),
            accruedInterest: 0,
            principal: uint128(offer.principal),
            originationFee: uint128(offer.originationFee),
            providerId: offer.providerId,
            termsHash: offer.termsHash
        });
        if (offer.pool == address(0)) _offchainAsset[loanId] = offer.asset;
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
        bytes32 offerHash = TypedDataHash.hash(offer);
        digest = _hashTypedDataV4(offerHash);
        if (offerUsed[digest]) revert Errors.OfferAlreadyUsed(digest);
        (address signer,,) = ECDSA.tryRecover(digest, offerSignature);
        if (signer == address(0) || !hasRole(QUOTE_SIGNER_ROLE, signer)) revert Errors.InvalidOfferSigner(signer);
        bytes32 accepted = _hashTypedDataV4(TypedDataHash.hashAcceptance(offerHash, acceptance.deadline));
        if (!SignatureChecker.isValidSignatureNow(offer.borrower, accepted, acceptanceSignature)) {
            revert Errors.InvalidAcceptanceSignature(offer.borrower);
        }
    }

    function _checkTerms(Offer calldata offer) private view {
        if (offer.principal == 0) revert Errors.InvalidOffer("principal is zero");
        if (offer.principal > type(uint128).max) revert Errors.InvalidOffer("principal too large");
        if (offer.originationFee >= offer.principal) revert Errors.InvalidOffer("fee not below principal");
        if (offer.term == 0) revert Errors.InvalidOffer("term is zero");
        if (offer.term > MAX_TERM) revert Errors.InvalidOffer("term too long");
        if (offer.collateralAsset == address(0)) revert Errors.InvalidOffer("no collateral asset");
        if (offer.collateralAmount == 0) revert Errors.InvalidOffer("collateral is zero");
        if (offer.pool != address(0)) {
            address poolAsset = IERC4626(offer.pool).asset();
            if (poolAsset != offer.asset) revert Errors.AssetMismatch(poolAsset, offer.asset);
        }
    }

    /// @dev The attestation must be the borrower's, valid now, and allow the loan's LTV at current prices; the
    /// collateral asset's own LTV limit applies as well.
    function _checkRisk(Offer calldata offer, RiskAttestation calldata attestation, bytes calldata signature)
        private
        view
    {
        if (attestation.borrower != offer.borrower) {
            revert Errors.AttestationBorrowerMismatch(attestation.borrower, offer.borrower);
        }
        scoringOracle.validateAttestation(attestation, signature);
        (uint256 ltv, uint16 limit) =
            collateralManager.loanToValueBps(offer.asset, offer.principal, offer.collateralAsset, offer.collateralAmount);
        if (ltv > attestation.maxLtvBps) revert Errors.LtvAboveAttestation(ltv, attestation.maxLtvBps);
        if (ltv > limit) revert Errors.LtvAboveCollateralLimit(ltv, limit);
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
    function repay(uint256 loanId, uint256 amount) external nonReentrant returns (uint256 interestPaid, uint256 principalPaid) {
        return _repay(loanId, amount);
    }

    /// @inheritdoc ICreditAggregator
    function close(uint256 loanId) external nonReentrant {
        (uint256 principal, uint256 interest) = amountOwed(loanId);
        _repay(loanId, principal + interest);
    }

    function _repay(uint256 loanId, uint256 amount) private returns (uint256 interestPaid, uint256 principalPaid) {
        StoredLoan storage loan = _activeLoan(loanId);
        address pool = loan.pool;
        if (pool == address(0)) revert Errors.NotPoolLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        uint32 rate = loan.rateBps;
        bool closed;
        (interestPaid, principalPaid, closed) = _applyRepayment(loanId, loan, amount, msg.sender, bytes32(0));
        if (closed) loan.status = LoanStatus.Repaid;

        IERC20(IERC4626(pool).asset()).safeTransferFrom(msg.sender, pool, interestPaid + principalPaid);
        ILendingPool(pool).onRepaymentAtRate(loanId, principalPaid, interestPaid, rate);
        if (closed) collateralManager.release(loanId, loan.borrower);
    }

    /// @inheritdoc ICreditAggregator
    function recordOffchainRepayment(uint256 loanId, uint256 amount, bytes32 paymentRef)
        external
        onlyRole(OPERATOR_ROLE)
        nonReentrant
    {
        StoredLoan storage loan = _activeLoan(loanId);
        if (loan.pool != address(0)) revert Errors.NotTraditionalLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        (,, bool closed) = _applyRepayment(loanId, loan, amount, msg.sender, paymentRef);
        if (closed) {
            loan.status = LoanStatus.Repaid;
            collateralManager.release(loanId, loan.borrower);
        }
    }

    /// @inheritdoc ICreditAggregator
    function markDefault(uint256 loanId) external onlyRole(OPERATOR_ROLE) nonReentrant {
        StoredLoan storage loan = _activeLoan(loanId);
        uint256 defaultableAt = uint256(loan.maturity) + gracePeriod;
        if (block.timestamp <= defaultableAt) revert Errors.NotYetDefaultable(loanId, defaultableAt);
        (uint128 outstanding, uint128 interest) = _accrue(loan);
        loan.status = LoanStatus.Defaulted;
        emit LoanDefaulted(loanId, outstanding, interest);
        address pool = loan.pool;
        if (pool != address(0)) ILendingPool(pool).onDefault(loanId, outstanding, loan.rateBps);
    }

    /// @inheritdoc ICreditAggregator
    function settleLiquidation(uint256 loanId, address liquidator, uint256 debtRepaid, bool collateralExhausted)
        external
        onlyCollateralManager
        nonReentrant
        returns (address pool, uint256 badDebt)
    {
        StoredLoan storage loan = _loans[loanId];
        LoanStatus status = loan.status;
        if (status != LoanStatus.Active && status != LoanStatus.Defaulted) revert Errors.LoanNotActive(loanId);
        pool = loan.pool;
        if (pool == address(0)) revert Errors.NotPoolLoan(loanId);
        // A defaulted loan's interest is frozen and its rate no longer accrues in the pool.
        uint32 accruingRate = status == LoanStatus.Active ? loan.rateBps : 0;
        (uint256 interestPaid, uint256 principalPaid, bool closed) = debtRepaid == 0
            ? (0, 0, false)
            : _applyRepayment(loanId, loan, debtRepaid, liquidator, bytes32(0));
        uint128 principalLost = 0;
        uint128 interestLost = 0;
        if (!closed && collateralExhausted) {
            (principalLost, interestLost) = (loan.outstandingPrincipal, loan.accruedInterest);
            (loan.outstandingPrincipal, loan.accruedInterest) = (0, 0);
            badDebt = uint256(principalLost) + interestLost;
            emit LoanWrittenOff(loanId, principalLost, interestLost);
            emit LoanClosed(loanId);
            closed = true;
        }
        if (closed) loan.status = LoanStatus.Liquidated;

        // The CollateralManager moves the liquidator's payment into the pool right after this returns.
        if (interestPaid + principalPaid > 0) {
            ILendingPool(pool).onRepaymentAtRate(loanId, principalPaid, interestPaid, accruingRate);
        }
        if (badDebt > 0) ILendingPool(pool).onLoss(loanId, principalLost, interestLost, accruingRate);
    }

    // ------------------------------------------------------------------ governance

    /// @inheritdoc ICreditAggregator
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @inheritdoc ICreditAggregator
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @notice Sets the grace period after maturity before a default may be marked. Admin (the timelock) only.
    function setGracePeriod(uint64 newGracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setGracePeriod(newGracePeriod);
    }

    function _setGracePeriod(uint64 newGracePeriod) private {
        if (newGracePeriod > MAX_GRACE_PERIOD) revert Errors.InvalidGracePeriod(newGracePeriod);
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
    function getLoan(uint256 loanId) external view returns (Loan memory loan) {
        StoredLoan storage stored = _loans[loanId];
        if (stored.status == LoanStatus.None) return loan;
        (address collateralAsset,) = collateralManager.collateralOf(loanId);
        address pool = stored.pool;
        loan = Loan({
            borrower: stored.borrower,
            rateBps: stored.rateBps,
            startTime: stored.startTime,
            pool: pool,
            maturity: stored.maturity,
            status: stored.status,
            asset: pool == address(0) ? _offchainAsset[loanId] : IERC4626(pool).asset(),
            lastAccrual: stored.lastAccrual,
            collateralAsset: collateralAsset,
            providerId: stored.providerId,
            principal: stored.principal,
            outstandingPrincipal: stored.outstandingPrincipal,
            accruedInterest: stored.accruedInterest,
            originationFee: stored.originationFee,
            termsHash: stored.termsHash
        });
    }

    /// @inheritdoc ICreditAggregator
    function amountOwed(uint256 loanId) public view returns (uint256 principal, uint256 interest) {
        StoredLoan storage loan = _loans[loanId];
        principal = loan.outstandingPrincipal;
        interest = loan.accruedInterest;
        if (loan.status == LoanStatus.Active) {
            interest += InterestMath.simpleInterestUp(principal, loan.rateBps, block.timestamp - loan.lastAccrual);
        }
    }

    /// @inheritdoc ICreditAggregator
    function debtOf(uint256 loanId)
        external
        view
        returns (address borrower, address asset, uint256 principal, uint256 interest, LoanStatus status)
    {
        StoredLoan storage loan = _loans[loanId];
        (principal, interest) = amountOwed(loanId);
        address pool = loan.pool;
        asset = pool == address(0) ? _offchainAsset[loanId] : IERC4626(pool).asset();
        return (loan.borrower, asset, principal, interest, loan.status);
    }

    // ------------------------------------------------------------------ internals

    function _activeLoan(uint256 loanId) private view returns (StoredLoan storage loan) {
        loan = _loans[loanId];
        if (loan.status != LoanStatus.Active) revert Errors.LoanNotActive(loanId);
    }

    /// @dev Interest to now, rounded up (the lender's favour), on the outstanding principal.
    function _accrue(StoredLoan storage loan) private returns (uint128 outstanding, uint128 interest) {
        outstanding = loan.outstandingPrincipal;
        interest = loan.accruedInterest;
        uint256 elapsed = block.timestamp - loan.lastAccrual;
        if (elapsed > 0) {
            if (loan.status == LoanStatus.Active) {
                interest += uint128(InterestMath.simpleInterestUp(outstanding, loan.rateBps, elapsed));
                loan.accruedInterest = interest;
            }
            loan.lastAccrual = uint40(block.timestamp);
        }
    }

    /// @dev Interest first, then principal; an amount above what is owed is capped. Emits LoanRepaid, and
    /// LoanClosed when nothing is left; the caller sets the final status.
    function _applyRepayment(uint256 loanId, StoredLoan storage loan, uint256 amount, address payer, bytes32 paymentRef)
        private
        returns (uint256 interestPaid, uint256 principalPaid, bool closed)
    {
        (uint128 outstanding, uint128 interest) = _accrue(loan);
        interestPaid = amount < interest ? amount : interest;
        uint256 rest = amount - interestPaid;
        principalPaid = rest < outstanding ? rest : outstanding;
        if (interestPaid + principalPaid == 0) revert Errors.NothingOwed(loanId);
        outstanding -= uint128(principalPaid);
        (loan.outstandingPrincipal, loan.accruedInterest) = (outstanding, interest - uint128(interestPaid));
        emit LoanRepaid(loanId, payer, interestPaid, principalPaid, outstanding, paymentRef);
        closed = outstanding == 0;
        if (closed) emit LoanClosed(loanId);
    }
}
