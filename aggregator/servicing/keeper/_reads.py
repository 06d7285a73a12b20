"""A round's reads: the open loans and unclaimed collateral in the store, and at one pinned block, in a few JSON-RPC
batches, what the CollateralManager would read; each loan's position from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.servicing.health import Position, Thresholds
from aggregator.servicing.keeper._core import _Core
from aggregator.servicing.prices import Price, PriceBoard, PriceRefusal, read_prices
from aggregator.servicing.repository import OpenLoan, UnclaimedCollateral
from chain.errors import ChainError
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
    #: loan ref → why the chain answered nothing usable for it (its debt or collateral asset has no contract, a view
    #: of it reverted): skipped, the other loans serviced (``unserviceable``)
    unreadable: dict[int, str] = field(default_factory=dict)


def _must(answer: Any) -> Any:
    """An answer the round cannot go on without (the CollateralManager's own settings): its failure fails the round."""
    if isinstance(answer, ChainError):
        raise answer
    return answer


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
        answers = iter(await read_views(provider, calls, each=True))
        paused, full_close, min_leftover = (_must(next(answers)) for _ in range(3))  # the chain's own: no round
        unreadable: dict[int, str] = {}
        debts, collateral = {}, {}
        for loan in loans:
            debt = next(answers)
            if isinstance(debt, ChainError):
                unreadable.setdefault(loan.loan_ref, f"its debt cannot be read: {debt}")
                continue
            _, asset, principal, interest, status, _ = debt
            debts[loan.loan_ref] = (str(asset).lower(), int(principal), int(interest), int(status))
        for loan in loans:
            held = next(answers)
            if isinstance(held, ChainError):
                unreadable.setdefault(loan.loan_ref, f"its collateral cannot be read: {held}")
                continue
            collateral[loan.loan_ref] = (str(held[0]).lower(), int(held[1]))
        configs, broken_assets = {}, {}
        for asset in collateral_assets:
            config = next(answers)
            if isinstance(config, ChainError):
                broken_assets[asset] = f"collateral asset {asset}'s configuration cannot be read: {config}"
                continue
            _ltv, threshold, bonus, *_ = config
            configs[asset] = (int(threshold), int(bonus))
        impairments = {}
        for loan in pool_loans:
            impairment = next(answers)
            if isinstance(impairment, ChainError):
                unreadable.setdefault(loan.loan_ref, f"its impairment cannot be read: {impairment}")
                continue
            impairments[loan.loan_ref] = int(impairment)
        balances = {}
        for asset in debt_assets:
            balance, allowance = next(answers), next(answers)
            failed = next((answer for answer in (balance, allowance) if isinstance(answer, ChainError)), None)
            if failed is not None:  # no token there (an address with no code), or one that reverts
                broken_assets[asset] = f"debt asset {asset} answers no balance: {failed}"
                continue
            balances[asset] = (int(balance), int(allowance))
        for loan in loans:
            for asset in ((loan.asset_address or "").lower(), (loan.collateral_asset or "").lower()):
                if asset in broken_assets:
                    unreadable.setdefault(loan.loan_ref, broken_assets[asset])
        prices = await read_prices(provider, manager, [*collateral_assets, *debt_assets], block, timestamp)
        thresholds = Thresholds(int(full_close), int(min_leftover))
        return _Read(
            bool(paused), thresholds, debts, collateral, configs, impairments, balances, prices, unreadable=unreadable
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
