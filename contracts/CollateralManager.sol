// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {Errors} from "./interfaces/Errors.sol";
import {ICollateralManager} from "./interfaces/ICollateralManager.sol";
import {ICreditAggregator} from "./interfaces/ICreditAggregator.sol";
import {Loan, LoanStatus} from "./interfaces/Types.sol";
import {CollateralMath} from "./libraries/CollateralMath.sol";

/// @notice Holds each loan's collateral for the CreditAggregator, prices it with Chainlink-style feeds and
/// liquidates unhealthy loans by the rules of Aave v3.3's LiquidationLogic. See ICollateralManager.
/// @dev Amounts are stored as uint96 (2^96 base units: 79 billion tokens of 18 decimals); larger deposits revert.
contract CollateralManager is ICollateralManager, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @dev The CreditAggregator's operator role: the account that cancels unfunded loans holds their liquidation.
    bytes32 private constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Below this health factor a position may be liquidated in full (Aave: CLOSE_FACTOR_HF_THRESHOLD).
    uint256 public constant CLOSE_FACTOR_HF_THRESHOLD = 0.95e18;
    /// @notice Share of the debt one liquidation may repay above that health factor (Aave: 50%).
    uint256 public constant DEFAULT_CLOSE_FACTOR_BPS = 5_000;
    uint16 public constant MAX_LIQUIDATION_BONUS_BPS = 2_000;
    uint32 public constant MAX_HEARTBEAT = 7 days;
    /// @notice The highest `fullCloseValue` governance may set: 1,000,000 USD (8 decimals). Above it, almost every
    /// position could be closed in full by one liquidation at a health factor just below 1.
    uint128 public constant MAX_FULL_CLOSE_VALUE = 1_000_000e8;
    uint256 private constant BPS = 10_000;
    uint256 private constant WAD = 1e18;
    uint8 private constant VALUE_DECIMALS = 8;

    /// @dev One slot per collateral asset: risk parameters, the cap, the total held and the frozen flag, so that a
    /// deposit reads and writes a single slot.
    struct CollateralConfig {
        uint16 ltvBps;
        uint16 liquidationThresholdBps;
        uint16 liquidationBonusBps;
        uint96 supplyCap;
        uint96 total;
        bool frozen;
    }

    struct PriceSource {
        AggregatorV3Interface feed;
        uint32 heartbeat;
        uint8 feedDecimals;
        uint8 tokenDecimals;
    }

    struct Position {
        address asset;
        uint96 amount;
    }

    struct LiquidationVars {
        address borrower;
        address debtAsset;
        uint256 debt;
        uint256 debtPrice;
        uint256 debtUnit;
        uint256 collateralPrice;
        uint256 collateralUnit;
        uint256 collateralValue;
        uint256 debtValue;
        uint256 healthFactor;
        uint256 maxDebt;
        uint256 debtRepaid;
        uint256 seized;
        bool defaulted;
    }

    ICreditAggregator public creditAggregator;
    bool public liquidationsPaused;
    AggregatorV3Interface public sequencerFeed;
    uint32 public sequencerGracePeriod;
    /// @notice Below this USD value (8 decimals) of debt or collateral a position may be liquidated in full.
    uint128 public fullCloseValue;
    /// @notice The smallest USD value (8 decimals) of debt and of collateral a partial liquidation may leave.
    uint128 public minLeftoverValue;

    mapping(address asset => CollateralConfig) private _configs;
    mapping(address asset => PriceSource) public priceSources;
    mapping(uint256 loanId => Position) private _positions;
    /// @inheritdoc ICollateralManager
    mapping(uint256 loanId => bool) public liquidationHeld;

    constructor(address admin, uint128 fullCloseValue_, uint128 minLeftoverValue_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setLiquidationThresholds(fullCloseValue_, minLeftoverValue_);
    }

    modifier onlyCreditAggregator() {
        if (msg.sender != address(creditAggregator)) revert Errors.NotCreditAggregator(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ positions

    /// @inheritdoc ICollateralManager
    function openPosition(
        uint256 loanId,
        address borrower,
        address asset,
        uint256 amount,
        address debtAsset,
        uint256 debt,
        uint16 attestedMaxLtvBps
    ) external onlyCreditAggregator {
        uint16 limit = _book(asset, amount, true);
        uint256 ltv = _ltvBps(debtAsset, debt, asset, amount);
        if (ltv > attestedMaxLtvBps) revert Errors.LtvAboveAttestation(ltv, attestedMaxLtvBps);
        if (ltv > limit) revert Errors.LtvAboveCollateralLimit(ltv, limit);
        _positions[loanId] = Position(asset, uint96(amount));
        emit CollateralAdded(loanId, borrower, asset, amount);
    }

    /// @inheritdoc ICollateralManager
    function release(uint256 loanId, address to) external onlyCreditAggregator {
        _release(loanId, to);
    }

    /// @inheritdoc ICollateralManager
    function claimCollateral(uint256 loanId) external nonReentrant {
        (address borrower,,,, LoanStatus status,) = creditAggregator.debtOf(loanId);
        if (status != LoanStatus.Repaid && status != LoanStatus.Liquidated && status != LoanStatus.Cancelled) {
            revert Errors.LoanNotClosed(loanId);
        }
        Position storage position = _positions[loanId];
        (address asset, uint96 amount) = (position.asset, position.amount);
        if (amount == 0) revert Errors.NothingToClaim(loanId);
        position.amount = 0;
        _configs[asset].total -= amount;
        emit CollateralRemoved(loanId, borrower, asset, amount);
        IERC20(asset).safeTransfer(borrower, amount);
    }

    /// @dev Pays a closed loan's collateral to `to`; when the transfer fails (a token that blocks the borrower, or a
    /// hook that reverts) the collateral stays for `claimCollateral`, so closing never fails on it.
    function _release(uint256 loanId, address to) private {
        Position storage position = _positions[loanId];
        (address asset, uint96 amount) = (position.asset, position.amount);
        if (amount == 0) return;
        position.amount = 0;
        CollateralConfig storage config = _configs[asset];
        config.total -= amount;
        if (IERC20(asset).trySafeTransfer(to, amount)) {
            emit CollateralRemoved(loanId, to, asset, amount);
        } else {
            (position.amount, config.total) = (amount, config.total + amount);
            emit CollateralClaimable(loanId, to, asset, amount);
        }
    }

    /// @inheritdoc ICollateralManager
    /// @dev A top-up is never refused for the supply cap or a frozen asset: it only makes a position safer.
    function addCollateral(uint256 loanId, uint256 amount) external nonReentrant {
        if (amount == 0) revert Errors.ZeroAmount();
        Position storage position = _positions[loanId];
        (address asset, uint96 held) = (position.asset, position.amount);
        if (held == 0) revert Errors.LoanNotActive(loanId);
        _book(asset, amount, false);
        position.amount = SafeCast.toUint96(held + amount);
        emit CollateralAdded(loanId, msg.sender, asset, amount);
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ICollateralManager
    function withdrawCollateral(uint256 loanId, uint256 amount, address to) external whenNotPaused nonReentrant {
        if (amount == 0) revert Errors.ZeroAmount();
        Position storage position = _positions[loanId];
        (address asset, uint96 held) = (position.asset, position.amount);
        if (amount >= held) revert Errors.InsufficientCollateral(amount, held);
        uint96 left = held - uint96(amount);
        _checkWithdrawal(loanId, asset, left);
        position.amount = left;
        _configs[asset].total -= uint96(amount);
        emit CollateralRemoved(loanId, to, asset, amount);
        IERC20(asset).safeTransfer(to, amount);
    }

    /// @dev Only the borrower of an active loan, and the loan-to-value after the withdrawal within the lower of the
    /// risk attestation's limit stored with the loan and the asset's LTV (the grade's limit holds for the loan's life).
    function _checkWithdrawal(uint256 loanId, address asset, uint256 left) private view {
        (address borrower, address debtAsset, uint256 principal, uint256 interest, LoanStatus status, uint16 attested) =
            creditAggregator.debtOf(loanId);
        if (status != LoanStatus.Active) revert Errors.LoanNotActive(loanId);
        if (msg.sender != borrower) revert Errors.NotBorrower(msg.sender, borrower);
        (uint256 ltv, uint16 limit) = loanToValueBps(debtAsset, principal + interest, asset, left);
        if (ltv > attested) revert Errors.LtvAboveAttestation(ltv, attested);
        if (ltv > limit) revert Errors.LtvAboveCollateralLimit(ltv, limit);
    }

    /// @dev Adds `amount` to the asset's total; a new position must be within the supply cap and the asset not
    /// frozen (top-ups are exempt from both). Returns the asset's LTV limit.
    function _book(address asset, uint256 amount, bool newPosition) private returns (uint16 ltvLimitBps) {
        CollateralConfig storage config = _configs[asset];
        if (config.liquidationThresholdBps == 0) revert Errors.UnsupportedCollateral(asset);
        uint256 totalAfter = uint256(config.total) + amount;
        if (newPosition) {
            if (config.frozen) revert Errors.CollateralFrozen(asset);
            if (totalAfter > config.supplyCap) revert Errors.SupplyCapExceeded(asset, config.supplyCap, totalAfter);
        }
        config.total = SafeCast.toUint96(totalAfter);
        return config.ltvBps;
    }

    // ------------------------------------------------------------------ liquidation

    /// @inheritdoc ICollateralManager
    /// @dev The liquidator approves this contract for the debt asset.
    function liquidate(uint256 loanId, uint256 repayAmount)
        external
        nonReentrant
        returns (uint256 debtRepaid, uint256 collateralSeized)
    {
        if (liquidationsPaused) revert Errors.LiquidationsPaused();
        if (liquidationHeld[loanId]) revert Errors.LiquidationHeld(loanId);
        if (repayAmount == 0) revert Errors.ZeroAmount();
        Position storage position = _positions[loanId];
        (address asset, uint96 held) = (position.asset, position.amount);
        CollateralConfig memory config = _configs[asset];
        LiquidationVars memory v = _assess(loanId, asset, held, config.liquidationThresholdBps);
        if (!v.defaulted && v.healthFactor >= WAD) revert Errors.HealthyPosition(v.healthFactor);

        v.debtRepaid = repayAmount < v.maxDebt ? repayAmount : v.maxDebt;
        v.seized = CollateralMath.collateralForDebtDown(
            v.debtRepaid, v.debtPrice, v.debtUnit, v.collateralPrice, v.collateralUnit, config.liquidationBonusBps
        );
        if (v.seized >= held) {
            v.seized = held;
            uint256 needed = CollateralMath.debtForCollateralUp(
                held, v.collateralPrice, v.collateralUnit, v.debtPrice, v.debtUnit, config.liquidationBonusBps
            );
            if (needed < v.debtRepaid) v.debtRepaid = needed;
        }
        // Either all the debt, or all the collateral, or enough of both left to be worth liquidating later.
        if (v.debtRepaid < v.debt && v.seized < held) {
            uint256 debtLeft = CollateralMath.valueDown(v.debt - v.debtRepaid, v.debtPrice, v.debtUnit);
            uint256 collateralLeft = CollateralMath.valueDown(held - v.seized, v.collateralPrice, v.collateralUnit);
            if (debtLeft < minLeftoverValue || collateralLeft < minLeftoverValue) {
                revert Errors.MustNotLeaveDust(debtLeft, collateralLeft);
            }
        }

        bool exhausted = v.seized == held && v.debtRepaid < v.debt;
        position.amount = held - uint96(v.seized); // when the debt is repaid in full, the rest goes to the borrower
        _configs[asset].total = config.total - uint96(v.seized);
        emit LoanLiquidated(loanId, msg.sender, v.debtRepaid, v.seized);
        if (exhausted) emit BadDebtRecorded(loanId, v.debtAsset, v.debt - v.debtRepaid);

        // The liquidator's payment first, then the books (the pool's, through the aggregator), then the collateral.
        IERC20(v.debtAsset).safeTransferFrom(msg.sender, creditAggregator.liquidationPayee(loanId), v.debtRepaid);
        creditAggregator.settleLiquidation(loanId, msg.sender, v.debtRepaid, exhausted);
        if (v.seized > 0) IERC20(asset).safeTransfer(msg.sender, v.seized);
        if (v.debtRepaid == v.debt) _release(loanId, v.borrower);
        return (v.debtRepaid, v.seized);
    }

    /// @inheritdoc ICollateralManager
    /// @dev Adds no power: the same operator may cancel such a loan, which releases all its collateral.
    function holdLiquidation(uint256 loanId) external {
        _checkOperator();
        Loan memory loan = creditAggregator.getLoan(loanId);
        if (loan.pool != address(0)) revert Errors.NotTraditionalLoan(loanId);
        if (loan.status != LoanStatus.Active) revert Errors.LoanNotActive(loanId);
        liquidationHeld[loanId] = true;
        emit LiquidationHoldChanged(loanId, true);
    }

    /// @inheritdoc ICollateralManager
    function releaseLiquidationHold(uint256 loanId) external {
        _checkOperator();
        liquidationHeld[loanId] = false;
        emit LiquidationHoldChanged(loanId, false);
    }

    function _checkOperator() private view {
        if (!IAccessControl(address(creditAggregator)).hasRole(OPERATOR_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, OPERATOR_ROLE);
        }
    }

    /// @dev Prices the loan: debt, values, health factor and the most one liquidation may repay.
    function _assess(uint256 loanId, address asset, uint256 held, uint256 thresholdBps)
        private
        view
        returns (LiquidationVars memory v)
    {
        uint256 principal;
        uint256 interest;
        LoanStatus status;
        (v.borrower, v.debtAsset, principal, interest, status,) = creditAggregator.debtOf(loanId);
        if (status != LoanStatus.Active && status != LoanStatus.Defaulted) revert Errors.LoanNotActive(loanId);
        v.defaulted = status == LoanStatus.Defaulted;
        v.debt = principal + interest;
        (v.debtPrice, v.debtUnit) = _price(v.debtAsset);
        (v.collateralPrice, v.collateralUnit) = _price(asset);
        v.collateralValue = CollateralMath.valueDown(held, v.collateralPrice, v.collateralUnit);
        v.debtValue = CollateralMath.valueUp(v.debt, v.debtPrice, v.debtUnit);
        v.healthFactor = CollateralMath.healthFactorDown(v.collateralValue, thresholdBps, v.debtValue);
        v.maxDebt = v.debt;
        if (
            !v.defaulted && v.healthFactor > CLOSE_FACTOR_HF_THRESHOLD && v.collateralValue >= fullCloseValue
                && v.debtValue >= fullCloseValue
        ) {
            v.maxDebt = v.debt * DEFAULT_CLOSE_FACTOR_BPS / BPS;
        }
    }

    // ------------------------------------------------------------------ prices

    /// @inheritdoc ICollateralManager
    function priceOf(address asset) external view returns (uint256 price) {
        (price,) = _price(asset);
    }

    /// @inheritdoc ICollateralManager
    function loanToValueBps(address debtAsset, uint256 debtAmount, address collateralAsset, uint256 collateralAmount)
        public
        view
        returns (uint256 ltvBps, uint16 maxLtvBps)
    {
        CollateralConfig storage config = _configs[collateralAsset];
        if (config.liquidationThresholdBps == 0) revert Errors.UnsupportedCollateral(collateralAsset);
        return (_ltvBps(debtAsset, debtAmount, collateralAsset, collateralAmount), config.ltvBps);
    }

    /// @dev Loan-to-value at feed prices, rounded up: debt valued up, collateral down.
    function _ltvBps(address debtAsset, uint256 debtAmount, address collateralAsset, uint256 collateralAmount)
        private
        view
        returns (uint256)
    {
        (uint256 debtPrice, uint256 debtUnit) = _price(debtAsset);
        (uint256 collateralPrice, uint256 collateralUnit) = _price(collateralAsset);
        return CollateralMath.ltvBpsUp(
            CollateralMath.valueUp(debtAmount, debtPrice, debtUnit),
            CollateralMath.valueDown(collateralAmount, collateralPrice, collateralUnit)
        );
    }

    /// @inheritdoc ICollateralManager
    function healthFactor(uint256 loanId) external view returns (uint256) {
        Position storage position = _positions[loanId];
        address asset = position.asset;
        return _assess(loanId, asset, position.amount, _configs[asset].liquidationThresholdBps).healthFactor;
    }

    /// @inheritdoc ICollateralManager
    function recoverableValue(uint256 loanId) external view returns (uint256 debt, uint256 recoverable) {
        Position storage position = _positions[loanId];
        (address asset, uint256 held) = (position.asset, position.amount);
        CollateralConfig storage config = _configs[asset];
        LiquidationVars memory v = _assess(loanId, asset, held, config.liquidationThresholdBps);
        recoverable = CollateralMath.debtForCollateralDown(
            held, v.collateralPrice, v.collateralUnit, v.debtPrice, v.debtUnit, config.liquidationBonusBps
        );
        return (v.debt, recoverable);
    }

    /// @inheritdoc ICollateralManager
    function collateralOf(uint256 loanId) external view returns (address asset, uint256 amount) {
        Position storage position = _positions[loanId];
        return (position.asset, position.amount);
    }

    /// @notice An asset's risk parameters, supply cap and the total held.
    function collateralConfig(address asset) external view returns (CollateralConfig memory) {
        return _configs[asset];
    }

    /// @dev USD price with 8 decimals and the token's unit, after the sequencer, staleness and sign checks.
    function _price(address asset) private view returns (uint256 price, uint256 unit) {
        PriceSource memory source = priceSources[asset];
        if (address(source.feed) == address(0)) revert Errors.NoPriceFeed(asset);
        _checkSequencer();
        (, int256 answer,, uint256 updatedAt,) = source.feed.latestRoundData();
        if (answer <= 0) revert Errors.InvalidPrice(address(source.feed), answer);
        if (updatedAt + source.heartbeat < block.timestamp) {
            revert Errors.StalePrice(address(source.feed), updatedAt, block.timestamp);
        }
        price = uint256(answer);
        if (source.feedDecimals > VALUE_DECIMALS) price /= 10 ** (source.feedDecimals - VALUE_DECIMALS);
        else if (source.feedDecimals < VALUE_DECIMALS) price *= 10 ** (VALUE_DECIMALS - source.feedDecimals);
        unit = 10 ** source.tokenDecimals;
    }

    /// @dev On an L2: the sequencer must be up, and up for longer than the grace period (Chainlink's L2 guidance).
    function _checkSequencer() private view {
        AggregatorV3Interface feed = sequencerFeed;
        if (address(feed) == address(0)) return;
        (, int256 answer, uint256 startedAt,,) = feed.latestRoundData();
        if (answer != 0 || startedAt == 0) revert Errors.SequencerDown();
        if (block.timestamp - startedAt <= sequencerGracePeriod) {
            revert Errors.SequencerGracePeriodNotOver(startedAt, sequencerGracePeriod);
        }
    }

    // ------------------------------------------------------------------ governance

    /// @notice Sets the CreditAggregator, once (it is deployed after this contract). Admin only.
    function setCreditAggregator(ICreditAggregator aggregator) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(creditAggregator) != address(0)) revert Errors.CreditAggregatorAlreadySet(address(creditAggregator));
        creditAggregator = aggregator;
    }

    /// @notice Sets a collateral asset's risk parameters (basis points) and supply cap (base units); a zero
    /// liquidation threshold disables the asset. Admin (the timelock) only.
    function setCollateralParameters(
        address asset,
        uint16 ltvBps,
        uint16 liquidationThresholdBps,
        uint16 liquidationBonusBps,
        uint96 supplyCap
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        bool disabled = liquidationThresholdBps == 0 && ltvBps == 0;
        if (
            liquidationBonusBps > MAX_LIQUIDATION_BONUS_BPS
                || (
                    !disabled
                        && (
                            ltvBps > liquidationThresholdBps || liquidationThresholdBps >= BPS
                                || uint256(liquidationThresholdBps) * (BPS + liquidationBonusBps) > BPS * BPS
                        )
                )
        ) {
            revert Errors.InvalidCollateralParameters(ltvBps, liquidationThresholdBps, liquidationBonusBps);
        }
        CollateralConfig storage config = _configs[asset];
        // Disabling would make every position in the asset liquidatable at once: freeze it and let them run off.
        if (disabled && config.total > 0) revert Errors.CollateralInUse(asset, config.total);
        (config.ltvBps, config.liquidationThresholdBps, config.liquidationBonusBps, config.supplyCap) =
            (ltvBps, liquidationThresholdBps, liquidationBonusBps, supplyCap);
        emit CollateralParametersChanged(asset, ltvBps, liquidationThresholdBps, liquidationBonusBps, supplyCap);
    }

    /// @notice Freezes a collateral asset: no new loan may post it; top-ups, withdrawals, repayments and
    /// liquidations of existing positions go on. Guardian (at once) or admin.
    function freezeCollateral(address asset) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender)) _checkRole(DEFAULT_ADMIN_ROLE);
        _setFrozen(asset, true);
    }

    /// @notice Lifts a freeze. Admin (the timelock) only.
    function unfreezeCollateral(address asset) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setFrozen(asset, false);
    }

    function _setFrozen(address asset, bool frozen) private {
        _configs[asset].frozen = frozen;
        emit CollateralFrozenChanged(asset, frozen);
    }

    /// @notice Sets `asset`'s USD price feed and its heartbeat (seconds). Admin (the timelock) only.
    function setPriceFeed(address asset, AggregatorV3Interface feed, uint32 heartbeat) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(feed) == address(0) || heartbeat == 0 || heartbeat > MAX_HEARTBEAT) {
            revert Errors.InvalidFeedParameters(address(feed), heartbeat);
        }
        priceSources[asset] = PriceSource(feed, heartbeat, feed.decimals(), IERC20Metadata(asset).decimals());
        emit PriceFeedChanged(asset, address(feed), heartbeat);
    }

    /// @notice Sets the L2 sequencer-uptime feed (zero: none) and its grace period. Admin (the timelock) only.
    function setSequencerFeed(AggregatorV3Interface feed, uint32 gracePeriod) external onlyRole(DEFAULT_ADMIN_ROLE) {
        (sequencerFeed, sequencerGracePeriod) = (feed, gracePeriod);
        emit SequencerFeedChanged(address(feed), gracePeriod);
    }

    /// @notice Sets the full-close and minimum-leftover values (USD, 8 decimals). Admin (the timelock) only.
    /// @dev `fullCloseValue_` at most `MAX_FULL_CLOSE_VALUE`, `minLeftoverValue_` at most half of it: a position
    /// liquidated partially (debt and collateral each worth at least `fullCloseValue`) then always has a repayment
    /// leaving at least `minLeftoverValue` of both — up to the 50% close factor for the debt — so
    /// `MustNotLeaveDust` never makes it unliquidatable. `InvalidLiquidationThresholds` otherwise.
    function setLiquidationThresholds(uint128 fullCloseValue_, uint128 minLeftoverValue_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setLiquidationThresholds(fullCloseValue_, minLeftoverValue_);
    }

    function _setLiquidationThresholds(uint128 fullCloseValue_, uint128 minLeftoverValue_) private {
        if (fullCloseValue_ > MAX_FULL_CLOSE_VALUE || uint256(minLeftoverValue_) * 2 > fullCloseValue_) {
            revert Errors.InvalidLiquidationThresholds(fullCloseValue_, minLeftoverValue_);
        }
        (fullCloseValue, minLeftoverValue) = (fullCloseValue_, minLeftoverValue_);
        emit LiquidationThresholdsChanged(fullCloseValue_, minLeftoverValue_);
    }

    /// @notice Pauses collateral withdrawals. Guardian only.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Lifts the withdrawal pause. Admin (the timelock) only.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    /// @notice Pauses liquidations. Guardian only.
    function pauseLiquidations() external onlyRole(GUARDIAN_ROLE) {
        liquidationsPaused = true;
        emit LiquidationPauseChanged(true);
    }

    /// @notice Lifts the liquidation pause. Admin (the timelock) only.
    function unpauseLiquidations() external onlyRole(DEFAULT_ADMIN_ROLE) {
        liquidationsPaused = false;
        emit LiquidationPauseChanged(false);
    }
}
