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

import {Errors} from "./interfaces/Errors.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";
import {PoolMath} from "./libraries/PoolMath.sol";

/// @notice An ERC-4626 vault whose cash funds fixed-rate loans opened by the CreditAggregator. See ILendingPool.
/// @dev Lenders' yield accrues in O(1) from the sum over open loans of principal × locked rate (the "issuance
/// rate", as in Maple's loan manager): total assets = cash − reserves + outstanding principal + the lenders' share
/// of the interest accrued from that sum. Interest accrues rounded down here and rounded up per loan, so the pool
/// never counts more than its loans owe it. Pausing blocks only new borrowing; deposits and withdrawals never stop.
contract LendingPool is ILendingPool, ERC4626, AccessControl, Pausable {
    using SafeERC20 for IERC20;

    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    uint16 public constant MAX_RESERVE_FACTOR_BPS = 5_000;
    uint32 public constant MAX_RATE_BPS = 100_000;
    uint256 private constant BPS = 10_000;

    address public immutable creditAggregator;

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
    // One slot: sum of principal × rateBps over the loans accruing, and when interest was last accrued.
    uint216 public issuanceRate;
    uint40 public lastAccrual;
    /// @notice Principal and interest written off so far.
    uint256 public realizedLosses;

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
        uint16 reserveFactorBps_
    ) ERC20(name_, symbol_) ERC4626(asset_) {
        creditAggregator = creditAggregator_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRateModel(baseRateBps_, slope1Bps_, slope2Bps_, optimalUtilizationBps_);
        _setReserveFactor(reserveFactorBps_);
        lastAccrual = uint40(block.timestamp);
    }

    modifier onlyCreditAggregator() {
        if (msg.sender != creditAggregator) revert Errors.NotCreditAggregator(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ loans

    /// @inheritdoc ILendingPool
    function fundLoan(uint256 loanId, address receiver, uint256 principal, uint256 originationFee, uint32 rateBps)
        external
        onlyCreditAggregator
        whenNotPaused
    {
        uint256 cash = availableLiquidity();
        uint128 borrowed = _totalBorrowed;
        uint32 model = _modelRate(borrowed, cash, principal);
        if (rateBps < model) revert Errors.RateBelowPoolModel(rateBps, model);
        if (principal > cash) revert Errors.InsufficientLiquidity(principal, cash);
        _accrue();
        _totalBorrowed = borrowed + uint128(principal);
        issuanceRate += uint216(principal * rateBps);
        emit LoanFunded(loanId, receiver, principal, originationFee, rateBps);
        IERC20(asset()).safeTransfer(receiver, principal - originationFee);
    }

    /// @inheritdoc ILendingPool
    function onRepaymentAtRate(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps)
        external
        onlyCreditAggregator
    {
        _bookRepayment(loanId, principalPaid, interestPaid, rateBps);
    }

    /// @inheritdoc ILendingPool
    /// @dev Kept for the interface; the CreditAggregator calls `onRepaymentAtRate`, which saves the rate lookup.
    function onRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid) external onlyCreditAggregator {
        _bookRepayment(loanId, principalPaid, interestPaid, ICreditAggregator(creditAggregator).getLoan(loanId).rateBps);
    }

    /// @inheritdoc ILendingPool
    function onDefault(uint256 loanId, uint256 outstandingPrincipal, uint32 rateBps) external onlyCreditAggregator {
        _accrue();
        issuanceRate -= uint216(outstandingPrincipal * rateBps);
        emit LoanDefaultRecorded(loanId, outstandingPrincipal);
    }

    /// @inheritdoc ILendingPool
    function onLoss(uint256 loanId, uint256 principalLost, uint256 interestLost, uint32 rateBps)
        external
        onlyCreditAggregator
    {
        _accrue();
        _totalBorrowed -= uint128(principalLost);
        issuanceRate -= uint216(principalLost * rateBps);
        _accountedInterest = uint128(PoolMath.saturatingSub(_accountedInterest, interestLost));
        realizedLosses += principalLost + interestLost;
        emit LossRealized(loanId, principalLost, interestLost);
    }

    function _bookRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid, uint32 rateBps) private {
        _accrue();
        _totalBorrowed -= uint128(principalPaid);
        if (principalPaid > 0 && rateBps > 0) issuanceRate -= uint216(principalPaid * rateBps);
        if (interestPaid > 0) {
            _accountedInterest = uint128(PoolMath.saturatingSub(_accountedInterest, interestPaid));
            _reserves = SafeCast.toUint104(_reserves + PoolMath.reserveShareUp(interestPaid, reserveFactorBps));
        }
        emit LoanRepaymentReceived(loanId, principalPaid, interestPaid);
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

    /// @notice Cash less reserves, plus outstanding principal, plus the lenders' share of expected interest.
    function totalAssets() public view override returns (uint256) {
        return availableLiquidity() + _totalBorrowed + PoolMath.lenderShareDown(expectedInterest(), reserveFactorBps);
    }

    /// @notice At most the cash on hand: lent principal comes back only as loans are repaid.
    function maxWithdraw(address owner) public view override returns (uint256) {
        return Math.min(super.maxWithdraw(owner), availableLiquidity());
    }

    /// @notice At most the shares worth the cash on hand.
    function maxRedeem(address owner) public view override returns (uint256) {
        return Math.min(super.maxRedeem(owner), convertToShares(availableLiquidity()));
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

    /// @notice Sets the reserve factor (at most 50%). Admin (the timelock) only.
    function setReserveFactor(uint16 reserveFactorBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setReserveFactor(reserveFactorBps_);
    }

    /// @notice Sends `amount` of reserves to `to`. Admin (the timelock) only.
    function withdrawReserves(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
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
