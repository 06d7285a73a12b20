// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";
import {PoolMath} from "./libraries/PoolMath.sol";

/// @notice An ERC-4626 vault whose cash funds fixed-rate loans opened by the CreditAggregator. See ILendingPool.
/// @dev Lenders' yield accrues in O(1) from the sum over open loans of principal × locked rate (the "issuance
/// rate", as in Maple's loan manager): total assets = cash − reserves + outstanding principal + the lenders' share
/// of the interest accrued from that sum. Interest accrues rounded down here and rounded up per loan, so the pool
/// never counts more than its loans owe it. Origination fees vest linearly (over the loan's term, pot-weighted as in
/// Yearn v3's profit unlocking) and impaired loans' expected losses are counted out at once (Maple's impairment), so
/// the share price neither jumps on a fee nor ignores a known loss; a fall in an impairment (a repayment, a price
/// recovery, a loan closed) vests like a fee, over `IMPAIRMENT_REVERSAL_VESTING`, so it cannot be taken in one block
/// either (deposit, lower the impairment, redeem). Pausing blocks only new borrowing; deposits and
/// withdrawals never stop. Every mutating entry point is `nonReentrant` (OZ `ReentrancyGuardTransient`).
contract LendingPool is ILendingPool, ERC4626, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    uint16 public constant MAX_RESERVE_FACTOR_BPS = 5_000;
    uint32 public constant MAX_RATE_BPS = 100_000;
    uint256 private constant BPS = 10_000;
    /// @notice The longest term a pool may accept, seconds (the CreditAggregator's own bound).
    uint40 public constant MAX_TERM_LIMIT = 100 * 365 days;
    /// @notice A new pool's longest term (governance changes it with `setMaxTerm`): the platform quotes up to a year.
    uint40 public constant DEFAULT_MAX_TERM = 365 days;
    /// @notice How long a fall in the impairments takes to reach `totalAssets`, seconds (pot-weighted, as fees vest).
    uint40 public constant IMPAIRMENT_REVERSAL_VESTING = 7 days;

    /// @dev An amount counted out of `totalAssets` and released linearly from `vestedAt` to `end`. One slot.
    struct Vesting {
        uint128 amount;
        uint40 vestedAt;
        uint40 end;
    }

    address public immutable creditAggregator;
    /// @dev Extra decimals of the shares over the asset (OZ ERC-4626's virtual-shares defence against a first
    /// depositor's donation; production pools use 6).
    uint8 private immutable _sharesDecimalsOffset;

    // One slot with Pausable's `_paused` (state variables pack across the inheritance chain: 8 + 128 + 16 + 104
    // bits): the pause flag, the rate model, the reserve factor and the protocol's reserves, read together when a
    // loan is funded (the cash it may lend is the balance less the reserves) and when interest is repaid.
    uint32 public baseRateBps;
    uint32 public slope1Bps;
    uint32 public slope2Bps;
    uint32 public optimalUtilizationBps;
    uint16 public reserveFactorBps;
    uint104 private _reserves;

    // One slot: outstanding principal and interest accrued up to `lastAccrual` and not yet paid.
    uint128 private _totalBorrowed;
    uint128 private _accountedInterest;
    // One slot: sum of principal × rateBps over the loans accruing, when interest was last accrued, and the
    // longest term the pool lends for (read with the issuance rate when a loan is funded).
    uint176 public issuanceRate;
    uint40 public lastAccrual;
    /// @notice The longest term, seconds, of a loan the pool funds (set through governance).
    uint40 public maxTermSeconds;
    /// @dev Origination fees received and not yet earned.
    Vesting private _fees;
    /// @dev Falls in the impairments not yet credited to the lenders.
    Vesting private _reversals;
    // One slot: losses written off so far, and the expected losses of impaired loans not yet realised.
    /// @notice Principal and interest written off so far.
    uint128 public realizedLosses;
    /// @notice The sum of the open loans' impairments: expected losses recognised in `totalAssets` before they
    /// are realised.
    uint128 public totalImpairment;
    /// @notice A loan's impairment: its expected loss, counted out of `totalAssets` (zero: none).
    mapping(uint256 loanId => uint256) public impairmentOf;
    /// @notice The reserves' share of the interest accrued and not yet paid, beyond what the current reserve factor
    /// gives them (negative: short of it): interest is shared at the factor in force while it accrued. Set when the
    /// factor changes, released into the reserves in proportion as that interest is paid, dropped in proportion as
    /// it is written off; zero while the factor has not changed since the interest accrued.
    int256 public reserveShareAdjustment;

    constructor(
        IERC20 asset_,
        string memory name_,
        string memory symbol_,
        address admin,
        address creditAggregator_,
        uint32 baseRateBps_,
        uint32 slope1Bps_,
        uint32 slope2Bps_,
        uint32 optimalUtilizationBps_,
        uint16 reserveFactorBps_,
        uint8 sharesDecimalsOffset_
    ) ERC20(name_, symbol_) ERC4626(asset_) {
        creditAggregator = creditAggregator_;
        _sharesDecimalsOffset = sharesDecimalsOffset_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRateModel(baseRateBps_, slope1Bps_, slope2Bps_, optimalUtilizationBps_);
        _setReserveFactor(reserveFactorBps_);
        _setMaxTerm(DEFAULT_MAX_TERM);
        lastAccrual = uint40(block.timestamp);
    }

    modifier onlyCreditAggregator() {
        if (msg.sender != creditAggregator) revert Errors.NotCreditAggregator(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ loans

    /// @inheritdoc ILendingPool
    function fundLoan(
        uint256 loanId,
        address receiver,
        uint256 principal,
        uint256 originationFee,
        uint32 rateBps,
        uint64 term
    ) external onlyCreditAggregator whenNotPaused nonReentrant {
        uint40 maxTerm = maxTermSeconds;
        if (term > maxTerm) revert Errors.TermAboveMaximum(term, maxTerm);
        uint256 cash = availableLiquidity();
        uint128 borrowed = _totalBorrowed;
        uint32 model = _modelRate(borrowed, cash, principal);
        if (rateBps < model) revert Errors.RateBelowPoolModel(rateBps, model);
        if (principal > cash) revert Errors.InsufficientLiquidity(principal, cash);
        _accrue();
        _totalBorrowed = borrowed + uint128(principal);
        issuanceRate += uint176(principal * rateBps);
        if (originationFee > 0) _vest(_fees, originationFee, term);
        emit LoanFunded(loanId, receiver, principal, originationFee, rateBps);
        IERC20(asset()).safeTransfer(receiver, principal - originationFee);
    }

    /// @inheritdoc ILendingPool
    function onRepaymentAtRate(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps)
        external
        onlyCreditAggregator
        nonReentrant
    {
        _bookRepayment(loanId, principalPaid, interestPaid, rateBps, true);
    }

    /// @inheritdoc ILendingPool
    /// @dev Kept for the interface; the CreditAggregator calls `onRepaymentAtRate`, which saves the rate lookup.
    function onRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid)
        external
        onlyCreditAggregator
        nonReentrant
    {
        _bookRepayment(
            loanId, principalPaid, interestPaid, ICreditAggregator(creditAggregator).getLoan(loanId).rateBps, true
        );
    }

    /// @inheritdoc ILendingPool
    function onDefault(uint256 loanId, uint256 outstandingPrincipal, uint32 rateBps)
        external
        onlyCreditAggregator
        nonReentrant
    {
        _accrue();
        issuanceRate -= uint176(outstandingPrincipal * rateBps);
        emit LoanDefaultRecorded(loanId, outstandingPrincipal);
    }

    /// @inheritdoc ILendingPool
    /// @dev A liquidation recovers what it repays from the collateral, so the expected loss stays.
    function onLiquidation(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps)
        external
        onlyCreditAggregator
        nonReentrant
    {
        _bookRepayment(loanId, principalPaid, interestPaid, rateBps, false);
    }

    /// @inheritdoc ILendingPool
    /// @dev The impairment ends: as much of it as the lenders' assets fell by is realised, the rest (the loss came
    /// out smaller than expected) vests.
    function onLoss(uint256 loanId, uint256 principalLost, uint256 interestLost, uint32 rateBps)
        external
        onlyCreditAggregator
        nonReentrant
    {
        _accrue();
        uint256 assetsBefore = _lendersAssets();
        _totalBorrowed -= uint128(principalLost);
        issuanceRate -= uint176(principalLost * rateBps);
        _adjustmentOf(interestLost); // the reserves' part of the interest lost is lost with it
        _accountedInterest = uint128(PoolMath.saturatingSub(_accountedInterest, interestLost));
        realizedLosses += uint128(principalLost + interestLost);
        _setImpairment(loanId, 0, PoolMath.saturatingSub(assetsBefore, _lendersAssets()));
        emit LossRealized(loanId, principalLost, interestLost);
    }

    /// @inheritdoc ILendingPool
    function onImpairment(uint256 loanId, uint256 expectedLoss) external onlyCreditAggregator nonReentrant {
        _setImpairment(loanId, expectedLoss, 0);
    }

    /// @dev A rise counts out of `totalAssets` at once, less what it takes back of the falls still vesting (they
    /// were never counted in), so the share price never steps up here; a fall beyond `realized` (the part of it a
    /// write-off took out of the lenders' assets) vests over `IMPAIRMENT_REVERSAL_VESTING`.
    function _setImpairment(uint256 loanId, uint256 expectedLoss, uint256 realized) private {
        uint256 previous = impairmentOf[loanId];
        if (previous == expectedLoss) return;
        impairmentOf[loanId] = expectedLoss;
        totalImpairment = uint128(totalImpairment - previous + expectedLoss);
        if (expectedLoss > previous) {
            _unvest(_reversals, expectedLoss - previous);
        } else {
            uint256 reversal = PoolMath.saturatingSub(previous - expectedLoss, realized);
            if (reversal > 0) _vest(_reversals, reversal, IMPAIRMENT_REVERSAL_VESTING);
        }
        emit ImpairmentChanged(loanId, expectedLoss);
    }

    /// @dev A repayment by the borrower lowers the debt and leaves the collateral, so it lowers the expected loss by
    /// what it paid (a liquidation's does not: it takes collateral worth as much).
    function _bookRepayment(
        uint256 loanId,
        uint256 principalPaid,
        uint256 interestPaid,
        uint32 rateBps,
        bool lowersImpairment
    ) private {
        if (lowersImpairment) {
            uint256 impairment = impairmentOf[loanId];
            if (impairment > 0) {
                _setImpairment(loanId, PoolMath.saturatingSub(impairment, principalPaid + interestPaid), 0);
            }
        }
        _accrue();
        _totalBorrowed -= uint128(principalPaid);
        if (principalPaid > 0 && rateBps > 0) issuanceRate -= uint176(principalPaid * rateBps);
        if (interestPaid > 0) {
            int256 released = _adjustmentOf(interestPaid);
            _accountedInterest = uint128(PoolMath.saturatingSub(_accountedInterest, interestPaid));
            uint256 share = PoolMath.reserveShareUp(interestPaid, reserveFactorBps);
            share = released >= 0 ? share + uint256(released) : PoolMath.saturatingSub(share, uint256(-released));
            _reserves = SafeCast.toUint104(_reserves + share);
        }
        emit LoanRepaymentReceived(loanId, principalPaid, interestPaid);
    }

    /// @dev Adds `amount` (non-zero) to `pot`; the vesting end becomes the average of what was left to vest and
    /// `term`, weighted by amount (Yearn v3's profit unlocking), so the share price never steps up on it.
    function _vest(Vesting storage pot, uint256 amount, uint256 term) private {
        uint256 left = _unvested(pot);
        uint256 end = pot.end;
        uint256 remaining = end > block.timestamp ? end - block.timestamp : 0;
        uint256 total = left + amount;
        uint256 duration = Math.mulDiv(1, left * remaining + amount * term, total, Math.Rounding.Ceil);
        (pot.amount, pot.vestedAt, pot.end) =
            (SafeCast.toUint128(total), uint40(block.timestamp), uint40(block.timestamp + duration));
    }

    /// @dev Takes up to `amount` out of what `pot` has left to vest; the rest keeps its end.
    function _unvest(Vesting storage pot, uint256 amount) private {
        uint256 left = _unvested(pot);
        if (left == 0) return;
        (pot.amount, pot.vestedAt) = (uint128(left - Math.min(left, amount)), uint40(block.timestamp));
    }

    /// @dev What `pot` has left to vest now, rounded up.
    function _unvested(Vesting storage pot) private view returns (uint256) {
        uint256 end = pot.end;
        if (block.timestamp >= end) return 0;
        return Math.mulDiv(pot.amount, end - block.timestamp, end - pot.vestedAt, Math.Rounding.Ceil);
    }

    /// @dev Takes out of `reserveShareAdjustment`, and returns, its part for `interest` of the interest accounted
    /// (all of it when `interest` is all of that), rounded toward zero; called before `interest` leaves the account.
    function _adjustmentOf(uint256 interest) private returns (int256 part) {
        int256 adjustment = reserveShareAdjustment;
        if (adjustment == 0) return 0;
        uint256 accounted = _accountedInterest;
        uint256 magnitude = uint256(adjustment >= 0 ? adjustment : -adjustment);
        uint256 taken = interest >= accounted ? magnitude : Math.mulDiv(magnitude, interest, accounted);
        part = adjustment >= 0 ? int256(taken) : -int256(taken);
        reserveShareAdjustment = adjustment - part;
    }

    /// @dev Moves interest accrued since `lastAccrual` from the issuance rate into `_accountedInterest`.
    function _accrue() private {
        uint256 elapsed = block.timestamp - lastAccrual;
        if (elapsed == 0) return;
        _accountedInterest += uint128(PoolMath.accruedDown(issuanceRate, elapsed));
        lastAccrual = uint40(block.timestamp);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILendingPool
    function modelRateBps(uint256 extraBorrow) external view returns (uint32) {
        return _modelRate(_totalBorrowed, availableLiquidity(), extraBorrow);
    }

    /// @inheritdoc ILendingPool
    /// @dev Cash less the reserves, which belong to the protocol.
    function availableLiquidity() public view returns (uint256) {
        return PoolMath.saturatingSub(IERC20(asset()).balanceOf(address(this)), _reserves);
    }

    /// @inheritdoc ILendingPool
    function totalBorrowed() external view returns (uint256) {
        return _totalBorrowed;
    }

    /// @inheritdoc ILendingPool
    function utilizationBps() external view returns (uint32) {
        return uint32(PoolMath.utilizationBpsUp(_totalBorrowed, availableLiquidity()));
    }

    /// @inheritdoc ILendingPool
    function expectedInterest() public view returns (uint256) {
        return _accountedInterest + PoolMath.accruedDown(issuanceRate, block.timestamp - lastAccrual);
    }

    /// @inheritdoc ILendingPool
    function reserves() external view returns (uint256) {
        return _reserves;
    }

    /// @inheritdoc ILendingPool
    function unvestedFees() external view returns (uint256) {
        return _unvested(_fees);
    }

    /// @inheritdoc ILendingPool
    function unvestedImpairmentReversals() external view returns (uint256) {
        return _unvested(_reversals);
    }

    /// @notice Cash less reserves, plus outstanding principal, plus the lenders' share of expected interest, less
    /// the impaired loans' expected losses, the origination fees not yet vested and the falls in the impairments
    /// not yet vested.
    function totalAssets() public view override returns (uint256) {
        return PoolMath.saturatingSub(
            _lendersAssets(), totalImpairment + _unvested(_fees) + _unvested(_reversals)
        );
    }

    /// @dev Cash less reserves, plus outstanding principal, plus the lenders' share of expected interest (after
    /// `reserveShareAdjustment`): the lenders' assets before impairments and vesting.
    function _lendersAssets() private view returns (uint256 gross) {
        gross = availableLiquidity() + _totalBorrowed + PoolMath.lenderShareDown(expectedInterest(), reserveFactorBps);
        int256 adjustment = reserveShareAdjustment;
        gross = adjustment >= 0 ? PoolMath.saturatingSub(gross, uint256(adjustment)) : gross + uint256(-adjustment);
    }

    /// @notice At most the cash on hand: lent principal comes back only as loans are repaid.
    function maxWithdraw(address owner) public view override returns (uint256) {
        return Math.min(super.maxWithdraw(owner), availableLiquidity());
    }

    /// @notice At most the shares worth the cash on hand.
    function maxRedeem(address owner) public view override returns (uint256) {
        return Math.min(super.maxRedeem(owner), convertToShares(availableLiquidity()));
    }

    function _decimalsOffset() internal view override returns (uint8) {
        return _sharesDecimalsOffset;
    }

    /// @dev Lenders' deposits and withdrawals are `nonReentrant` too (ERC-4626's entry points all end here).
    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override nonReentrant {
        super._deposit(caller, receiver, assets, shares);
    }

    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
        nonReentrant
    {
        super._withdraw(caller, receiver, owner, assets, shares);
    }

    function _modelRate(uint256 borrowed, uint256 cash, uint256 extraBorrow) private view returns (uint32) {
        uint256 utilization =
            PoolMath.utilizationBpsUp(borrowed + extraBorrow, cash > extraBorrow ? cash - extraBorrow : 0);
        return uint32(PoolMath.kinkedRateBpsUp(baseRateBps, slope1Bps, slope2Bps, optimalUtilizationBps, utilization));
    }

    // ------------------------------------------------------------------ governance

    /// @notice Sets the utilization-kinked rate model. Admin (the timelock) only.
    function setRateModel(uint32 base, uint32 slope1, uint32 slope2, uint32 optimal) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setRateModel(base, slope1, slope2, optimal);
    }

    /// @notice Sets the reserve factor (at most 50%) for interest accrued from now on: the interest accrued and not
    /// yet paid keeps the old factor's split (`reserveShareAdjustment`), so the share price does not move with the
    /// change, and neither a lender's past yield nor the reserves' past share changes hands. Admin (the timelock)
    /// only.
    function setReserveFactor(uint16 reserveFactorBps_) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        _accrue();
        uint256 accounted = _accountedInterest;
        reserveShareAdjustment += int256(PoolMath.reserveShareUp(accounted, reserveFactorBps))
            - int256(PoolMath.reserveShareUp(accounted, reserveFactorBps_));
        _setReserveFactor(reserveFactorBps_);
    }

    /// @notice Sets the longest term of a loan the pool funds, seconds. Admin (the timelock) only.
    function setMaxTerm(uint40 maxTermSeconds_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxTerm(maxTermSeconds_);
    }

    function _setMaxTerm(uint40 maxTermSeconds_) private {
        if (maxTermSeconds_ == 0 || maxTermSeconds_ > MAX_TERM_LIMIT) revert Errors.InvalidMaxTerm(maxTermSeconds_);
        maxTermSeconds = maxTermSeconds_;
        emit MaxTermChanged(maxTermSeconds_);
    }

    /// @notice Sends `amount` of reserves to `to`. Admin (the timelock) only.
    function withdrawReserves(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        uint256 held = _reserves;
        if (amount > held) revert Errors.InsufficientReserves(amount, held);
        _reserves = uint104(held - amount);
        emit ReservesWithdrawn(to, amount);
        IERC20(asset()).safeTransfer(to, amount);
    }

    /// @notice Pauses new borrowing. Guardian only.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Lifts the pause. Admin (the timelock) only.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    function _setRateModel(uint32 base, uint32 slope1, uint32 slope2, uint32 optimal) private {
        if (optimal == 0 || optimal >= BPS || uint256(base) + slope1 + slope2 > MAX_RATE_BPS) {
            revert Errors.InvalidRateModel();
        }
        (baseRateBps, slope1Bps, slope2Bps, optimalUtilizationBps) = (base, slope1, slope2, optimal);
        emit RateModelChanged(base, slope1, slope2, optimal);
    }

    function _setReserveFactor(uint16 reserveFactorBps_) private {
        if (reserveFactorBps_ > MAX_RESERVE_FACTOR_BPS) revert Errors.InvalidReserveFactor(reserveFactorBps_);
        reserveFactorBps = reserveFactorBps_;
        emit ReserveFactorChanged(reserveFactorBps_);
    }
}
