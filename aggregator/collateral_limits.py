"""What each chain's contracts will let a credit request's loan open with, read at quote time: the collateral asset's
own terms in the CollateralManager (``collateralConfig``: its LTV, supply cap and total held, frozen flag) and whether
the chain's CreditAggregator is paused. ``openPosition`` refuses a new position above the LOWER of the attested LTV
(the grade's) and the asset's own (``LtvAboveCollateralLimit``), in a frozen asset (``CollateralFrozen``) or past the
supply cap (``SupplyCapExceeded``), and a paused aggregator every ``openLoan`` (``EnforcedPause``): a quote signed on
such a chain could only revert at the accept, after the borrower signed. Such a chain is left out of the request
with the reason named (``CollateralLimit.refusal``).

One JSON-RPC batch per chain (the two views), the chains read concurrently, the answers kept for ``ttl`` seconds per
(chain, collateral asset) as the quote path keeps the feeds' prices (``aggregator.valuation``): under traffic a
request reads nothing. What is kept may be up to ``ttl`` old: a change of the asset's terms or a pause is seen by the
requests after it; ``openPosition`` checks again at the accept. A chain whose node cannot be read is not refused here
(its limits are unknown, the request is quoted there on the grade's LTV as before).

The LTV limit holds for the loan's debt, not only its principal: the CollateralManager's health factor counts the
principal and the interest accrued on it, so a loan whose principal alone sat at the limit fell below a health factor
of 1 before it was due, prices unchanged (grade A: 79.99% against WETH's 82.5% liquidation threshold, a 365-day loan
at 7.10% on day 165), and was liquidated. Each offer is held to its chain's ``DebtCeiling``: the largest debt its
schedule reaches (``largest_debt``) must be within the limit, or the offer is dropped with the collateral that would
carry it named."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from eth_utils.address import to_checksum_address
from web3.exceptions import Web3Exception

from aggregator.assets import Asset
from aggregator.platform import ChainRuntime
from chain.errors import ChainError
from chain.views import read_views, view
from compliance import Disclosure
from risk.policy import collateral_limit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollateralLimit:
    """One chain's terms for one collateral asset (base units) and whether its CreditAggregator is paused."""

    chain: str
    ltv_bps: int
    liquidation_threshold_bps: int
    supply_cap: int
    total: int
    frozen: bool
    aggregator_paused: bool

    def refusal(
        self, collateral: Asset, collateral_amount: int, amount: Decimal, collateral_value: Decimal, grade_ltv_bps: int
    ) -> str | None:
        """Why a loan of ``amount`` on ``collateral_amount`` of ``collateral`` (worth ``collateral_value`` in the loan
        asset) cannot be opened on this chain, or None. The LTV is the lower of the grade's and the asset's, a basis
        point under it for the contract's rounding (``risk.policy.collateral_limit``)."""
        symbol = collateral.symbol
        if self.aggregator_paused:
            return f"the CreditAggregator on {self.chain} is paused: it opens no loan until unpaused"
        if self.liquidation_threshold_bps == 0:
            return f"{symbol} is not accepted as collateral on {self.chain}"
        if self.frozen:
            return f"{symbol} collateral is frozen on {self.chain}: no new loan may post it"
        if self.total + collateral_amount > self.supply_cap:
            room = collateral.format(max(self.supply_cap - self.total, 0))
            return f"{symbol}'s collateral supply cap on {self.chain} is reached: room for {room} {symbol}"
        ltv_bps = min(grade_ltv_bps, self.ltv_bps)
        if amount > collateral_limit(collateral_value, ltv_bps):
            return (
                f"the amount is above {_percent(ltv_bps)} of the collateral's value, {symbol}'s loan-to-value limit on"
                f" {self.chain} (the grade allows {_percent(grade_ltv_bps)})"
            )
        return None


@dataclass(frozen=True, slots=True)
class DebtCeiling:
    """The largest debt (in the loan asset's units) one chain's contracts let the request's collateral carry: its
    value on that chain's feeds at the lower of the grade's LTV and the asset's (``ltv_bps``), a basis point under it
    (``risk.policy.collateral_limit``)."""

    chain: str
    ltv_bps: int
    amount: Decimal

    @classmethod
    def on(
        cls, chain: str, collateral_value: Decimal, grade_ltv_bps: int, limit: CollateralLimit | None
    ) -> DebtCeiling:
        """``chain``'s ceiling for collateral worth ``collateral_value`` there; ``limit`` None: the grade's LTV only."""
        ltv_bps = grade_ltv_bps if limit is None else min(grade_ltv_bps, limit.ltv_bps)
        return cls(chain, ltv_bps, collateral_limit(collateral_value, ltv_bps))

    def refusal(self, debt: Decimal, asset: Asset, collateral: Asset, collateral_amount: int) -> str | None:
        """Why a loan whose debt reaches ``debt`` (``largest_debt``) on ``collateral_amount`` of ``collateral``
        cannot be quoted on this chain, or None: its health factor would fall below 1 before it is due at today's
        prices. Names the collateral that would carry that debt, rounded up to a ten-thousandth of a unit."""
        if debt <= self.amount:
            return None
        carries = ""
        if self.amount > 0:
            needed = collateral.from_base_units(collateral_amount) * debt / self.amount
            quantum = Decimal(1).scaleb(-min(4, collateral.decimals))
            carries = f"; {needed.quantize(quantum, ROUND_CEILING)} {collateral.symbol} would carry it"
        return (
            f"the debt its schedule reaches, {_cents(debt, ROUND_CEILING)} {asset.symbol} (principal and interest), is"
            f" above {_percent(self.ltv_bps)} of the collateral's value on {self.chain}"
            f" ({_cents(self.amount, ROUND_FLOOR)} {asset.symbol}): the loan could be liquidated before it is due at"
            f" today's prices{carries}"
        )


def largest_debt(disclosure: Disclosure) -> Decimal:
    """The most a loan's debt — the principal outstanding and the interest accrued on it, as the CollateralManager's
    health factor counts it — reaches while its disclosed schedule is kept: just before each payment falls due, the
    principal then outstanding plus the interest that payment carries (for a single payment, everything owed at
    maturity). Interest accrues on-chain per second on a 365-day year; an installment schedule's own day count may
    differ from it by a day's interest, which the gap between the LTV and the liquidation threshold covers."""
    outstanding, largest = disclosure.principal, Decimal(0)
    for payment in disclosure.payments:
        largest = max(largest, outstanding + payment.interest)
        outstanding -= payment.principal
    return largest


def _cents(amount: Decimal, rounding: str) -> str:
    return f"{amount.quantize(Decimal('0.01'), rounding):f}"


def _percent(bps: int) -> str:
    return f"{Decimal(bps) / 100:.2f}%"


class CollateralLimits:
    """Each chain's ``CollateralLimit`` for a collateral asset, read in one batch per chain and kept ``ttl`` seconds."""

    def __init__(
        self, chains: dict[str, ChainRuntime], ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._chains, self._ttl, self._clock = chains, ttl, clock
        self._kept: dict[tuple[str, str], tuple[float, CollateralLimit]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._config = view("CollateralManager", "collateralConfig")
        self._paused = view("CreditAggregator", "paused")

    async def read(self, chain_names: Sequence[str], collateral: Asset) -> dict[str, CollateralLimit]:
        """The limits of ``collateral`` on each of ``chain_names`` that could be read (the others are left out)."""
        names = [name for name in chain_names if name in self._chains and collateral.addresses.get(name)]
        found = await asyncio.gather(*(self._limit(name, collateral.addresses[name]) for name in names))
        return {name: limit for name, limit in zip(names, found, strict=True) if limit is not None}

    async def _limit(self, name: str, asset: str) -> CollateralLimit | None:
        key = (name, asset.lower())
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self._ttl:
            return kept[1]
        async with self._locks.setdefault(key, asyncio.Lock()):  # one read per chain and asset at a time
            kept = self._kept.get(key)
            if kept is not None and self._clock() - kept[0] < self._ttl:
                return kept[1]
            chain = self._chains[name]
            try:
                config, paused = await read_views(
                    chain.client.provider,
                    [
                        self._config.call(chain.record.address("CollateralManager"), to_checksum_address(asset)),
                        self._paused.call(chain.record.address("CreditAggregator")),
                    ],
                )
            except (ChainError, Web3Exception, OSError, TimeoutError, ValueError) as err:
                log.info("%s: the collateral limits of %s could not be read: %s", name, asset, err)
                return None
            ltv, threshold, _bonus, cap, total, frozen = config
            limit = CollateralLimit(name, int(ltv), int(threshold), int(cap), int(total), bool(frozen), bool(paused))
            self._kept[key] = (self._clock(), limit)
            return limit
