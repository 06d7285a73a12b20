// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Errors} from "./interfaces/Errors.sol";
import {ICollateralManager} from "./interfaces/ICollateralManager.sol";

/// @notice Holds each loan's collateral for the CreditAggregator.
contract CollateralManager is ICollateralManager, AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    struct Position {
        address asset;
        uint256 amount;
    }

    mapping(uint256 loanId => Position) private _positions;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc ICollateralManager
    function onCollateralDeposited(uint256 loanId, address from, address asset, uint256 amount)
        external
        onlyRole(AGGREGATOR_ROLE)
    {
        Position storage position = _positions[loanId];
        position.asset = asset;
        position.amount += amount;
        emit CollateralAdded(loanId, from, asset, amount);
    }

    /// @inheritdoc ICollateralManager
    function release(uint256 loanId, address to) external onlyRole(AGGREGATOR_ROLE) {
        Position storage position = _positions[loanId];
        uint256 amount = position.amount;
        address asset = position.asset;
        position.amount = 0;
        emit CollateralRemoved(loanId, to, asset, amount);
        if (amount > 0) IERC20(asset).safeTransfer(to, amount);
    }

    /// @inheritdoc ICollateralManager
    function addCollateral(uint256 loanId, uint256 amount) external {
        if (amount == 0) revert Errors.ZeroAmount();
        Position storage position = _positions[loanId];
        if (position.asset == address(0) || position.amount == 0) revert Errors.LoanNotActive(loanId);
        position.amount += amount;
        emit CollateralAdded(loanId, msg.sender, position.asset, amount);
        IERC20(position.asset).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ICollateralManager
    function collateralOf(uint256 loanId) external view returns (address asset, uint256 amount) {
        Position storage position = _positions[loanId];
        return (position.asset, position.amount);
    }
}
