"""A round's reads: the open loans and unclaimed collateral in the store, and at one pinned block, in a few JSON-RPC
batches, what the CollateralManager would read; each loan's position from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_utils.address import to_checksum_address

from aggregator.servicing.health import Position, Thresholds
from aggregator.servicing.keeper._core import _Core
from aggregator.servicing.prices import Price, PriceBoard, PriceRefusal, read_prices
from aggregator.servicing.repository import OpenLoan, UnclaimedCollateral
from chain.views import read_views, view

DEFAULTED = 3  # LoanStatus.Defaulted in the contracts' enum (None, Active, Repaid, Defaulted, Liquidated)


@dataclass(frozen=True, slots=True)
class _Read:
    """One round's reads at a pinned block."""

    paused: bool
    thresholds: Thresholds
    debts: dict[int, tuple[str, int, int, int]]  # loan ref → (asset, principal, interest, status)
    collateral: dict[int, tuple[str, int]]  # loan ref → (asset, amount)
    configs: dict[str, tuple[int, int]]  # collateral asset → (liquidation threshold bps, bonus bps)
    impairments: dict[int, int]  # pool loans: loan ref → the pool's recorded impairment
    balances: dict[str, tuple[int, int]]  # debt asset → (keeper balance, allowance to the manager)
    prices: PriceBoard
    #: loan ref → the key of its liquidation sent in an earlier round and not yet settled (not confirmed in time)
    in_flight: dict[int, str] = field(default_factory=dict)


class _Reading(_Core):
    def _open_loans(self) -> list[OpenLoan]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.open_loans(self.chain_id, self.ledger_chain.aggregator)

    def _unclaimed(self) -> list[UnclaimedCollateral]:
        with self.store.unit_of_work() as uow:
            return uow.servicing.unclaimed_collateral(self.chain_id, self.chain.manager)

    async def _read(self, loans: Sequence[OpenLoan], block: int, timestamp: int) -> _Read:
        provider = self.client.provider
        manager, aggregator = self.chain.manager, self.chain.aggregator
        collateral_assets = sorted({(loan.collateral_asset or "").lower() for loan in loans} - {""})
        debt_assets = sorted({(loan.asset_address or "").lower() for loan in loans} - {""})
        pool_loans = [loan for loan in loans if loan.pool]
        calls = [
            view("CollateralManager", "liquidationsPaused").call(manager, block=block),
            view("CollateralManager", "fullCloseValue").call(manager, block=block),
            view("CollateralManager", "minLeftoverValue").call(manager, block=block),
        ]
        calls += [view("CreditAggregator", "debtOf").call(aggregator, loan.loan_ref, block=block) for loan in loans]
        calls += [view("CollateralManager", "collateralOf").call(manager, loan.loan_ref, block=block) for loan in loans]
        calls += [
            view("CollateralManager", "collateralConfig").call(manager, to_checksum_address(asset), block=block)
            for asset in collateral_assets
        ]
        calls += [
            view("LendingPool", "impairmentOf").call(to_checksum_address(str(loan.pool)), loan.loan_ref, block=block)
            for loan in pool_loans
        ]
        for asset in debt_assets:
            token = to_checksum_address(asset)
            calls.append(view("MockERC20", "balanceOf").call(token, self.chain.keeper, block=block))
            calls.append(view("MockERC20", "allowance").call(token, self.chain.keeper, manager, block=block))
        answers = iter(await read_views(provider, calls))
        paused, full_close, min_leftover = bool(next(answers)), int(next(answers)), int(next(answers))
        debts = {}
        for loan in loans:
            _, asset, principal, interest, status, _ = next(answers)
            debts[loan.loan_ref] = (str(asset).lower(), int(principal), int(interest), int(status))
        collateral = {}
        for loan in loans:
            asset, amount = next(answers)
            collateral[loan.loan_ref] = (str(asset).lower(), int(amount))
        configs = {}
        for asset in collateral_assets:
            _ltv, threshold, bonus, *_ = next(answers)
            configs[asset] = (int(threshold), int(bonus))
        impairments = {loan.loan_ref: int(next(answers)) for loan in pool_loans}
        balances = {asset: (int(next(answers)), int(next(answers))) for asset in debt_assets}
        prices = await read_prices(provider, manager, [*collateral_assets, *debt_assets], block, timestamp)
        return _Read(
            paused, Thresholds(full_close, min_leftover), debts, collateral, configs, impairments, balances, prices
        )

    def _position(self, loan: OpenLoan, read: _Read) -> Position | str:
        debt_asset, principal, interest, status = read.debts[loan.loan_ref]
        collateral_asset, amount = read.collateral[loan.loan_ref]
        debt_price, collateral_price = read.prices.get(debt_asset), read.prices.get(collateral_asset)
        for price in (debt_price, collateral_price):
            if isinstance(price, PriceRefusal):
                return f"no usable {price.asset} price: {price.reason}"
        assert isinstance(debt_price, Price)
        assert isinstance(collateral_price, Price)
        threshold, bonus = read.configs.get(collateral_asset, (0, 0))
        return Position(
            debt=principal + interest,
            defaulted=status == DEFAULTED,
            debt_price=debt_price.usd,
            debt_unit=debt_price.unit,
            collateral=amount,
            collateral_price=collateral_price.usd,
            collateral_unit=collateral_price.unit,
            threshold_bps=threshold,
            bonus_bps=bonus,
        )
