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
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICollateralManager} from "./interfaces/ICollateralManager.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {ICreditScoringOracle} from "./interfaces/ICreditScoringOracle.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";
import {Acceptance, CollateralPermit, Loan, LoanStatus, Offer, Repayment, RiskAttestation} from "./interfaces/Types.sol";
import {InterestMath} from "./libraries/InterestMath.sol";
import {TypedDataHash} from "./libraries/TypedDataHash.sol";

/// @notice Loan registry and router. See ICreditAggregator.
/// @dev A loan is stored in two packed slots, only what later operations read (the public `Loan` struct is
/// assembled by `getLoan`): the pool as its registry id, the asset of a pool loan is its pool's asset and the
/// collateral is the CollateralManager's. The terms nothing on-chain reads again (principal, fee, provider id,
/// terms hash, start) are in `LoanOpened`. Offers are single-use through a bitmap of nonces per quote signer
/// (as Uniswap's Permit2): sequential nonces share a word, so most acceptances flip a bit in a word already written.
contract CreditAggregator is ICreditAggregator, AccessControl, EIP712, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant QUOTE_SIGNER_ROLE = keccak256("QUOTE_SIGNER_ROLE");
    /// @notice Sends `openLoan`: the platform's relayer only.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    uint64 public constant MAX_GRACE_PERIOD = 365 days;
    uint64 private constant MAX_TERM = 100 * 365 days;
    /// @notice The highest annual rate an offer may carry, basis points (1,000%).
    uint32 public constant MAX_RATE_BPS = 100_000;

    /// @dev Kept only for a loan funded off-chain: its asset, whether anything was ever repaid on it (recorded by the
    /// operator or by a liquidation: such a loan cannot be cancelled unfunded) and the provider a liquidator pays.
    struct OffchainFunding {
        address asset;
        bool repaid; // packed with `asset`: written at opening at no extra cost
        bytes32 providerId;
    }

    struct StoredLoan {
        address borrower; // slot 0
        uint32 rateBps;
        uint40 maturity;
        LoanStatus status;
        uint16 poolId; // zero: funded off-chain
        uint96 outstandingPrincipal; // slot 1 (principal is below 2^96, see _checkTerms)
        uint104 accruedInterest;
        uint40 lastAccrual;
        uint16 maxLtvBps; // the risk attestation's LTV limit, for the life of the loan
    }

    ICollateralManager public immutable collateralManager;
    ICreditScoringOracle public immutable scoringOracle;

    // These share the slot of Pausable's `_paused` (state variables pack across the inheritance chain), which
    // openLoan reads first: the loan counter then costs no cold read of its own.
    uint64 public gracePeriod;
    /// @notice Number of loans opened; their ids run from 1.
    uint64 public loanCount;
    /// @notice Number of registered pools; their ids run from 1.
    uint16 public poolCount;

    mapping(uint256 loanId => StoredLoan) private _loans;
    mapping(uint256 loanId => OffchainFunding) private _offchain;
    /// @notice Where a liquidator pays a loan funded off-chain by `providerId` (set through governance).
    mapping(bytes32 providerId => address) public settlementAddress;
    mapping(address signer => mapping(uint256 word => uint256 bits)) private _nonceBitmaps;
    mapping(address pool => uint16) public poolId;
    mapping(uint16 id => address) private _pools;

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
    ) external onlyRole(RELAYER_ROLE) whenNotPaused nonReentrant returns (uint256 loanId) {
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
    ) external onlyRole(RELAYER_ROLE) whenNotPaused nonReentrant returns (uint256 loanId) {
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
        uint16 fundingPool = _checkTerms(offer);
        _checkRisk(offer, attestation, attestationSignature);

        loanId = ++loanCount;
        _loans[loanId] = StoredLoan({
            borrower: offer.borrower,
            rateBps: offer.rateBps,
            maturity: uint40(block.timestamp + offer.term),
            status: LoanStatus.Active,
            poolId: fundingPool,
            outstandingPrincipal: uint96(offer.principal),
            accruedInterest: 0,
            lastAccrual: uint40(block.timestamp),
            maxLtvBps: attestation.maxLtvBps
        });
        if (fundingPool == 0) _offchain[loanId] = OffchainFunding(offer.asset, false, offer.providerId);
        _emitOpened(loanId, offer, digest);

        IERC20(offer.collateralAsset).safeTransferFrom(offer.borrower, address(collateralManager), offer.collateralAmount);
        collateralManager.openPosition(
            loanId, offer.borrower, offer.collateralAsset, offer.collateralAmount, offer.asset, offer.principal,
            attestation.maxLtvBps
        );
        if (fundingPool != 0) {
            ILendingPool(offer.pool).fundLoan(
                loanId, offer.borrower, offer.principal, offer.originationFee, offer.rateBps, offer.term
            );
        }
    }

    /// @dev Verifies the offer's and the acceptance's signatures and consumes the offer's nonce.
    function _checkSignatures(Acceptance calldata acceptance, bytes calldata offerSignature, bytes calldata acceptanceSignature)
        private
        returns (bytes32 digest)
    {
        Offer calldata offer = acceptance.offer;
        if (offer.chainId != block.chainid) revert Errors.WrongChain(offer.chainId, block.chainid);
        if (block.timestamp > offer.expiry) revert Errors.OfferExpired(offer.expiry, block.timestamp);
        if (block.timestamp > acceptance.deadline) revert Errors.AcceptanceExpired(acceptance.deadline, block.timestamp);
        bytes32 offerHash = TypedDataHash.hash(offer);
        digest = _hashTypedDataV4(offerHash);
        (address signer,,) = ECDSA.tryRecover(digest, offerSignature);
        if (signer == address(0) || !hasRole(QUOTE_SIGNER_ROLE, signer)) revert Errors.InvalidOfferSigner(signer);
        if (!_useNonce(signer, offer.nonce)) revert Errors.OfferAlreadyUsed(digest);
        bytes32 accepted = _hashTypedDataV4(TypedDataHash.hashAcceptance(offerHash, acceptance.deadline));
        if (!SignatureChecker.isValidSignatureNow(offer.borrower, accepted, acceptanceSignature)) {
            revert Errors.InvalidAcceptanceSignature(offer.borrower);
        }
    }

    /// @dev Returns the funding pool's registry id (zero for a loan funded off-chain).
    function _checkTerms(Offer calldata offer) private view returns (uint16 fundingPool) {
        if (offer.principal == 0) revert Errors.InvalidOffer("principal is zero");
        if (offer.principal > type(uint96).max) revert Errors.InvalidOffer("principal too large");
        if (offer.rateBps > MAX_RATE_BPS) revert Errors.InvalidOffer("rate too high");
        if (offer.originationFee >= offer.principal) revert Errors.InvalidOffer("fee not below principal");
        if (offer.term == 0) revert Errors.InvalidOffer("term is zero");
        if (offer.term > MAX_TERM) revert Errors.InvalidOffer("term too long");
        if (offer.collateralAsset == address(0)) revert Errors.InvalidOffer("no collateral asset");
        if (offer.collateralAmount == 0) revert Errors.InvalidOffer("collateral is zero");
        if (offer.pool != address(0)) {
            fundingPool = poolId[offer.pool];
            if (fundingPool == 0) revert Errors.UnknownPool(offer.pool);
            address poolAsset = IERC4626(offer.pool).asset();
            if (poolAsset != offer.asset) revert Errors.AssetMismatch(poolAsset, offer.asset);
        }
    }

    /// @dev A nonce's bitmap word and its bit in that word: 256 nonces to a word.
    function _nonceBit(uint256 nonce) private pure returns (uint256 word, uint256 bit) {
        return (nonce >> 8, 1 << (nonce & 0xff));
    }

    /// @dev Marks `nonce` used for `signer`; false when it already was.
    function _useNonce(address signer, uint256 nonce) private returns (bool) {
        (uint256 word, uint256 bit) = _nonceBit(nonce);
        uint256 bits = _nonceBitmaps[signer][word];
        if (bits & bit != 0) return false;
        _nonceBitmaps[signer][word] = bits | bit;
        return true;
    }

    /// @dev The attestation must be the borrower's, for this offer (its nonce, consumed above, so the attestation
    /// is single-use) and valid now. The CollateralManager checks the loan's LTV at current prices against the
    /// attestation's limit and the collateral asset's own when it opens the position.
    function _checkRisk(Offer calldata offer, RiskAttestation calldata attestation, bytes calldata signature)
        private
        view
    {
        if (attestation.borrower != offer.borrower) {
            revert Errors.AttestationBorrowerMismatch(attestation.borrower, offer.borrower);
        }
        if (attestation.nonce != offer.nonce) revert Errors.AttestationOfferMismatch(attestation.nonce, offer.nonce);
        scoringOracle.validateAttestation(attestation, signature);
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
        return _repay(loanId, amount, msg.sender);
    }

    /// @inheritdoc ICreditAggregator
    /// @dev The consent is the signature, not the permit: a permit only sets an allowance, which a front-runner can
    /// also set by submitting it first, so a failed permit is ignored once the signature has verified.
    function repayWithPermit(Repayment calldata repayment, bytes calldata signature, CollateralPermit calldata permit)
        external
        nonReentrant
        returns (uint256 interestPaid, uint256 principalPaid)
    {
        address borrower = _loans[repayment.loanId].borrower;
        if (block.timestamp > repayment.deadline) revert Errors.RepaymentExpired(repayment.deadline, block.timestamp);
        if (!_useNonce(borrower, repayment.nonce)) revert Errors.RepaymentNonceUsed(borrower, repayment.nonce);
        if (!SignatureChecker.isValidSignatureNow(borrower, _hashTypedDataV4(TypedDataHash.hash(repayment)), signature)) {
            revert Errors.InvalidRepaymentSignature(borrower);
        }
        try IERC20Permit(_assetOf(repayment.loanId, _poolOf(_loans[repayment.loanId]))).permit(
            borrower, address(this), permit.value, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch {}
        return _repay(repayment.loanId, repayment.amount, borrower);
    }

    /// @inheritdoc ICreditAggregator
    function close(uint256 loanId) external nonReentrant {
        (uint256 principal, uint256 interest) = amountOwed(loanId);
        _repay(loanId, principal + interest, msg.sender);
    }

    /// @dev A defaulted loan can be repaid too: its interest is frozen and its pool no longer accrues it, so the pool
    /// books the payment at rate zero, as `settleLiquidation` does. `payer` pays and is named in `LoanRepaid`.
    function _repay(uint256 loanId, uint256 amount, address payer)
        private
        returns (uint256 interestPaid, uint256 principalPaid)
    {
        StoredLoan storage loan = _loans[loanId];
        uint32 rate = _accruingRateOfLiquidatable(loanId, loan);
        address pool = _poolOf(loan);
        if (pool == address(0)) revert Errors.NotPoolLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        bool closed;
        (interestPaid, principalPaid, closed) = _applyRepayment(loanId, loan, amount, payer, bytes32(0));
        if (closed) loan.status = LoanStatus.Repaid;

        IERC20(IERC4626(pool).asset()).safeTransferFrom(payer, pool, interestPaid + principalPaid);
        ILendingPool(pool).onRepaymentAtRate(loanId, principalPaid, interestPaid, rate);
        if (closed) {
            ILendingPool(pool).onImpairment(loanId, 0); // nothing is left to lose
            collateralManager.release(loanId, loan.borrower);
        }
    }

    /// @inheritdoc ICreditAggregator
    function recordOffchainRepayment(uint256 loanId, uint256 amount, bytes32 paymentRef)
        external
        onlyRole(OPERATOR_ROLE)
        nonReentrant
    {
        StoredLoan storage loan = _loans[loanId];
        _accruingRateOfLiquidatable(loanId, loan); // active or in default: a late payment is recorded too
        if (loan.poolId != 0) revert Errors.NotTraditionalLoan(loanId);
        if (amount == 0) revert Errors.ZeroAmount();
        _offchain[loanId].repaid = true;
        (,, bool closed) = _applyRepayment(loanId, loan, amount, msg.sender, paymentRef);
        if (closed) {
            loan.status = LoanStatus.Repaid;
            collateralManager.release(loanId, loan.borrower);
        }
    }

    /// @inheritdoc ICreditAggregator
    /// @dev Emits `LoanCancelled` then `LoanClosed` (every ended loan closes), then releases the collateral. Interest
    /// accrued on the principal never paid out is dropped with it: the borrower owes nothing.
    function cancelUnfunded(uint256 loanId) external onlyRole(OPERATOR_ROLE) nonReentrant {
        StoredLoan storage loan = _activeLoan(loanId);
        if (loan.poolId != 0) revert Errors.NotTraditionalLoan(loanId);
        if (_offchain[loanId].repaid) revert Errors.LoanHasRepayments(loanId);
        loan.status = LoanStatus.Cancelled;
        _store(loan, 0, 0);
        emit LoanCancelled(loanId);
        emit LoanClosed(loanId);
        collateralManager.release(loanId, loan.borrower);
    }

    /// @inheritdoc ICreditAggregator
    /// @dev A pool loan is also impaired at once when its collateral no longer covers the debt; a price that cannot
    /// be read now (stale feed, sequencer down) does not block the default, and anyone may `impair` later.
    function markDefault(uint256 loanId) external onlyRole(OPERATOR_ROLE) nonReentrant {
        StoredLoan storage loan = _activeLoan(loanId);
        uint256 defaultableAt = uint256(loan.maturity) + gracePeriod;
        if (block.timestamp <= defaultableAt) revert Errors.NotYetDefaultable(loanId, defaultableAt);
        (uint256 outstanding, uint256 interest) = _accrue(loan);
        loan.status = LoanStatus.Defaulted;
        emit LoanDefaulted(loanId, outstanding, interest);
        address pool = _poolOf(loan);
        if (pool == address(0)) return;
        ILendingPool(pool).onDefault(loanId, outstanding, loan.rateBps);
        try collateralManager.recoverableValue(loanId) returns (uint256 debt, uint256 recoverable) {
            _bookImpairment(ILendingPool(pool), loanId, debt, recoverable);
        } catch {}
    }

    /// @inheritdoc ICreditAggregator
    function impair(uint256 loanId) external nonReentrant returns (uint256 expectedLoss) {
        StoredLoan storage loan = _loans[loanId];
        _accruingRateOfLiquidatable(loanId, loan);
        address pool = _poolOf(loan);
        if (pool == address(0)) revert Errors.NotPoolLoan(loanId);
        (uint256 debt, uint256 recoverable) = collateralManager.recoverableValue(loanId);
        return _bookImpairment(ILendingPool(pool), loanId, debt, recoverable);
    }

    /// @dev The expected loss is the debt the collateral cannot recover in a liquidation (zero while it can).
    function _bookImpairment(ILendingPool pool, uint256 loanId, uint256 debt, uint256 recoverable)
        private
        returns (uint256 expectedLoss)
    {
        expectedLoss = debt > recoverable ? debt - recoverable : 0;
        emit LoanImpaired(loanId, debt, recoverable, expectedLoss);
        pool.onImpairment(loanId, expectedLoss);
    }

    /// @inheritdoc ICreditAggregator
    function settleLiquidation(uint256 loanId, address liquidator, uint256 debtRepaid, bool collateralExhausted)
        external
        onlyCollateralManager
        nonReentrant
        returns (address payee, uint256 badDebt)
    {
        StoredLoan storage loan = _loans[loanId];
        uint32 accruingRate = _accruingRateOfLiquidatable(loanId, loan);
        address pool = _poolOf(loan);
        payee = pool == address(0) ? _settlementOf(loanId) : pool;
        if (pool == address(0)) _offchain[loanId].repaid = true; // the lender was paid from its collateral
        (uint256 interestPaid, uint256 principalPaid, bool closed) = debtRepaid == 0
            ? (0, 0, false)
            : _applyRepayment(loanId, loan, debtRepaid, liquidator, bytes32(0));
        (uint256 principalLost, uint256 interestLost) =
            !closed && collateralExhausted ? _writeOff(loanId, loan) : (uint256(0), uint256(0));
        if (closed || collateralExhausted) loan.status = LoanStatus.Liquidated;
        badDebt = principalLost + interestLost;
        // The CollateralManager has already moved the liquidator's payment to the payee; a provider funding
        // off-chain books it in its own ledger from LoanRepaid.
        if (pool != address(0)) {
            _bookLiquidation(ILendingPool(pool), loanId, principalPaid, interestPaid, principalLost, interestLost, accruingRate);
        }
    }

    /// @dev Reverts unless the loan is active or in default (repayable, liquidatable); a defaulted loan's interest is
    /// frozen and its rate no longer accrues in the pool, so its accruing rate is zero.
    function _accruingRateOfLiquidatable(uint256 loanId, StoredLoan storage loan) private view returns (uint32) {
        LoanStatus status = loan.status;
        if (status != LoanStatus.Active && status != LoanStatus.Defaulted) revert Errors.LoanNotActive(loanId);
        return status == LoanStatus.Active ? loan.rateBps : 0;
    }

    /// @inheritdoc ICreditAggregator
    function liquidationPayee(uint256 loanId) external view returns (address payee) {
        address pool = _poolOf(_loans[loanId]);
        return pool == address(0) ? _settlementOf(loanId) : pool;
    }

    /// @dev A written-off loss ends the loan's impairment in the pool; a liquidation that repaid everything ends it too.
    function _bookLiquidation(
        ILendingPool pool,
        uint256 loanId,
        uint256 principalPaid,
        uint256 interestPaid,
        uint256 principalLost,
        uint256 interestLost,
        uint32 accruingRate
    ) private {
        if (principalPaid + interestPaid > 0) pool.onLiquidation(loanId, principalPaid, interestPaid, accruingRate);
        if (principalLost + interestLost > 0) pool.onLoss(loanId, principalLost, interestLost, accruingRate);
        else if (_loans[loanId].status == LoanStatus.Liquidated) pool.onImpairment(loanId, 0);
    }

    /// @dev Where a liquidator pays for a loan funded off-chain: its provider's settlement address.
    function _settlementOf(uint256 loanId) private view returns (address payee) {
        bytes32 providerId = _offchain[loanId].providerId;
        payee = settlementAddress[providerId];
        if (payee == address(0)) revert Errors.NoSettlementAddress(providerId);
    }

    /// @dev Writes off what is left of a loan whose collateral ran out.
    function _writeOff(uint256 loanId, StoredLoan storage loan) private returns (uint256 principal, uint256 interest) {
        (principal, interest) = _accrue(loan);
        _store(loan, 0, 0);
        emit LoanWrittenOff(loanId, principal, interest);
        emit LoanClosed(loanId);
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

    /// @notice Registers a LendingPool that offers may draw from, under the next pool id. The pool must name
    /// this contract as its CreditAggregator. Admin (the timelock) only.
    function registerPool(address pool) external onlyRole(DEFAULT_ADMIN_ROLE) returns (uint16 id) {
        if (poolId[pool] != 0) revert Errors.PoolAlreadyRegistered(pool);
        if (pool.code.length == 0) revert Errors.InvalidPool(pool);
        try ILendingPool(pool).creditAggregator() returns (address lender) {
            if (lender != address(this)) revert Errors.InvalidPool(pool);
        } catch {
            revert Errors.InvalidPool(pool);
        }
        id = ++poolCount;
        (poolId[pool], _pools[id]) = (id, pool);
        emit PoolRegistered(pool, id);
    }

    /// @notice Sets the account a liquidator pays for loans funded off-chain by `providerId` (zero: such loans
    /// cannot be liquidated). Admin (the timelock) only.
    function setSettlementAddress(bytes32 providerId, address account) external onlyRole(DEFAULT_ADMIN_ROLE) {
        settlementAddress[providerId] = account;
        emit SettlementAddressChanged(providerId, account);
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
    function invalidateNonces(uint256 word, uint256 mask) external {
        _nonceBitmaps[msg.sender][word] |= mask;
        emit NoncesInvalidated(msg.sender, word, mask);
    }

    /// @inheritdoc ICreditAggregator
    function nonceUsed(address signer, uint256 nonce) external view returns (bool) {
        (uint256 word, uint256 bit) = _nonceBit(nonce);
        return _nonceBitmaps[signer][word] & bit != 0;
    }

    /// @inheritdoc ICreditAggregator
    function getLoan(uint256 loanId) external view returns (Loan memory loan) {
        StoredLoan storage stored = _loans[loanId];
        if (stored.status == LoanStatus.None) return loan;
        (address collateralAsset, uint256 collateralAmount) = collateralManager.collateralOf(loanId);
        address pool = _poolOf(stored);
        loan = Loan({
            borrower: stored.borrower,
            pool: pool,
            asset: _assetOf(loanId, pool),
            rateBps: stored.rateBps,
            maturity: stored.maturity,
            lastAccrual: stored.lastAccrual,
            status: stored.status,
            outstandingPrincipal: stored.outstandingPrincipal,
            accruedInterest: stored.accruedInterest,
            collateralAsset: collateralAsset,
            collateralAmount: collateralAmount,
            maxLtvBps: stored.maxLtvBps
        });
    }

    /// @inheritdoc ICreditAggregator
    function amountOwed(uint256 loanId) public view returns (uint256 principal, uint256 interest) {
        return _accrued(_loans[loanId]);
    }

    /// @inheritdoc ICreditAggregator
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
        )
    {
        StoredLoan storage loan = _loans[loanId];
        (principal, interest) = amountOwed(loanId);
        return (loan.borrower, _assetOf(loanId, _poolOf(loan)), principal, interest, loan.status, loan.maxLtvBps);
    }

    // ------------------------------------------------------------------ internals

    function _activeLoan(uint256 loanId) private view returns (StoredLoan storage loan) {
        loan = _loans[loanId];
        if (loan.status != LoanStatus.Active) revert Errors.LoanNotActive(loanId);
    }

    function _poolOf(StoredLoan storage loan) private view returns (address) {
        uint16 id = loan.poolId;
        return id == 0 ? address(0) : _pools[id];
    }

    /// @dev A pool loan's asset is its pool's; an off-chain funded loan's is recorded at opening.
    function _assetOf(uint256 loanId, address pool) private view returns (address) {
        return pool == address(0) ? _offchain[loanId].asset : IERC4626(pool).asset();
    }

    /// @dev Interest to now, rounded up (the lender's favour), on the outstanding principal. Writes nothing: the
    /// caller stores the loan's new balances with `lastAccrual` in one slot write.
    function _accrued(StoredLoan storage loan) private view returns (uint256 outstanding, uint256 interest) {
        outstanding = loan.outstandingPrincipal;
        interest = loan.accruedInterest;
        if (loan.status == LoanStatus.Active) {
            interest += InterestMath.simpleInterestUp(outstanding, loan.rateBps, block.timestamp - loan.lastAccrual);
        }
    }

    function _store(StoredLoan storage loan, uint256 outstanding, uint256 interest) private {
        (loan.outstandingPrincipal, loan.accruedInterest, loan.lastAccrual) =
            (uint96(outstanding), SafeCast.toUint104(interest), uint40(block.timestamp));
    }

    function _accrue(StoredLoan storage loan) private returns (uint256 outstanding, uint256 interest) {
        (outstanding, interest) = _accrued(loan);
        _store(loan, outstanding, interest);
    }

    /// @dev Interest first, then principal; an amount above what is owed is capped. Emits LoanRepaid, and
    /// LoanClosed when nothing is left; the caller sets the final status.
    function _applyRepayment(uint256 loanId, StoredLoan storage loan, uint256 amount, address payer, bytes32 paymentRef)
        private
        returns (uint256 interestPaid, uint256 principalPaid, bool closed)
    {
        (uint256 outstanding, uint256 interest) = _accrued(loan);
        interestPaid = amount < interest ? amount : interest;
        uint256 rest = amount - interestPaid;
        principalPaid = rest < outstanding ? rest : outstanding;
        if (interestPaid + principalPaid == 0) revert Errors.NothingOwed(loanId);
        outstanding -= principalPaid;
        _store(loan, outstanding, interest - interestPaid);
        emit LoanRepaid(loanId, payer, interestPaid, principalPaid, outstanding, paymentRef);
        closed = outstanding == 0;
        if (closed) emit LoanClosed(loanId);
    }
}
