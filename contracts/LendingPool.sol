// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ILendingPool} from "./interfaces/ILendingPool.sol";

/// @notice An ERC-4626 vault whose cash funds fixed-rate loans opened by the CreditAggregator.
/// @dev Walking-skeleton accounting: total assets are cash plus outstanding principal; interest counts when paid.
contract LendingPool is ILendingPool, ERC4626, AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    uint256 private constant BPS = 10_000;

    uint32 public baseRateBps;
    uint32 public slope1Bps;
    uint32 public slope2Bps;
    uint32 public optimalUtilizationBps;
    uint256 public totalBorrowed;

    constructor(
        IERC20 asset_,
        string memory name_,
        string memory symbol_,
        address admin,
        uint32 baseRateBps_,
        uint32 slope1Bps_,
        uint32 slope2Bps_,
        uint32 optimalUtilizationBps_
    ) ERC20(name_, symbol_) ERC4626(asset_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRateModel(baseRateBps_, slope1Bps_, slope2Bps_, optimalUtilizationBps_);
    }

    /// @notice Sets the utilization-kinked rate model. Admin (the timelock) only.
    function setRateModel(uint32 base, uint32 slope1, uint32 slope2, uint32 optimal) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setRateModel(base, slope1, slope2, optimal);
    }

    /// @inheritdoc ILendingPool
    function modelRateBps(uint256 extraBorrow) public view returns (uint32) {
        uint256 borrowed = totalBorrowed + extraBorrow;
        uint256 cash = IERC20(asset()).balanceOf(address(this));
        uint256 utilization = _utilizationBps(borrowed, cash > extraBorrow ? cash - extraBorrow : 0);
        uint256 rate = baseRateBps;
        if (utilization <= optimalUtilizationBps) {
            rate += Math.mulDiv(slope1Bps, utilization, optimalUtilizationBps, Math.Rounding.Ceil);
        } else {
            rate += slope1Bps
                + Math.mulDiv(slope2Bps, utilization - optimalUtilizationBps, BPS - optimalUtilizationBps, Math.Rounding.Ceil);
        }
        return uint32(rate);
    }

    /// @inheritdoc ILendingPool
    function availableLiquidity() public view returns (uint256) {
        return IERC20(asset()).balanceOf(address(this));
    }

    /// @inheritdoc ILendingPool
    function utilizationBps() external view returns (uint32) {
        return uint32(_utilizationBps(totalBorrowed, availableLiquidity()));
    }

    /// @notice Cash plus outstanding principal.
    function totalAssets() public view override returns (uint256) {
        return availableLiquidity() + totalBorrowed;
    }

    /// @inheritdoc ILendingPool
    function fundLoan(uint256 loanId, address receiver, uint256 principal, uint256 originationFee, uint32 rateBps)
        external
        onlyRole(AGGREGATOR_ROLE)
    {
        uint32 model = modelRateBps(principal);
        if (rateBps < model) revert Errors.RateBelowPoolModel(rateBps, model);
        uint256 cash = availableLiquidity();
        if (principal > cash) revert Errors.InsufficientLiquidity(principal, cash);
        totalBorrowed += principal;
        emit LoanFunded(loanId, receiver, principal, originationFee, rateBps);
        IERC20(asset()).safeTransfer(receiver, principal - originationFee);
    }

    /// @inheritdoc ILendingPool
    function onRepayment(uint256 loanId, uint256 principalPaid, uint256 interestPaid) external onlyRole(AGGREGATOR_ROLE) {
        totalBorrowed -= principalPaid;
        emit LoanRepaymentReceived(loanId, principalPaid, interestPaid);
    }

    function _setRateModel(uint32 base, uint32 slope1, uint32 slope2, uint32 optimal) private {
        if (optimal == 0 || optimal >= BPS) revert Errors.InvalidRateModel();
        (baseRateBps, slope1Bps, slope2Bps, optimalUtilizationBps) = (base, slope1, slope2, optimal);
        emit RateModelChanged(base, slope1, slope2, optimal);
    }

    function _utilizationBps(uint256 borrowed, uint256 cash) private pure returns (uint256) {
        uint256 total = borrowed + cash;
        return total == 0 ? 0 : Math.mulDiv(borrowed, BPS, total, Math.Rounding.Ceil);
    }
}
