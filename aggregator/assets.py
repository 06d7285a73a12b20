"""Assets the platform lends and takes as collateral: symbol, decimals, per-chain token address, and the USD
price used to value collateral (static on devnets; a price-feed source later)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

from eth_typing import ChecksumAddress

from aggregator.errors import InvalidCreditRequest

# The contracts store principal and collateral amounts as uint96 (CollateralManager, CreditAggregator).
MAX_BASE_UNITS = 2**96 - 1
# A plain decimal in ASCII digits: no sign, no exponent, no other script's digits (Decimal accepts all three).
AMOUNT_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,30})?$"
_AMOUNT = re.compile(AMOUNT_PATTERN)
_EXACT = Context(prec=100)


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    decimals: int
    usd_price: Decimal
    addresses: dict[str, ChecksumAddress] = field(default_factory=dict)

    def to_base_units(self, amount: Decimal, field_name: str) -> int:
        """``amount`` in whole units to integer base units; refuses more precision than the asset has, and amounts
        past what the contracts can hold (``MAX_BASE_UNITS``)."""
        if not amount.is_finite():
            raise InvalidCreditRequest(field_name, f"not a decimal amount: {amount}")
        # exact integer arithmetic throughout: Decimal's normalize and scaleb round to the context's 28 digits, and
        # a uint96 amount has 29
        _, digits, exponent = amount.as_tuple()
        assert isinstance(exponent, int)  # finite
        coefficient = int("".join(map(str, digits)))
        while exponent < -self.decimals and coefficient and coefficient % 10 == 0:
            coefficient, exponent = coefficient // 10, exponent + 1
        if exponent < -self.decimals and coefficient:
            raise InvalidCreditRequest(field_name, f"{self.symbol} has {self.decimals} decimals")
        # adjusted() is the power of ten of the leading digit: checked before the power, so nothing grows unbounded
        fits = amount.adjusted() + self.decimals < len(str(MAX_BASE_UNITS))
        base_units = coefficient * 10 ** max(exponent + self.decimals, 0) if fits else MAX_BASE_UNITS + 1
        if base_units > MAX_BASE_UNITS:
            largest = self.format(MAX_BASE_UNITS)
            raise InvalidCreditRequest(field_name, f"larger than the largest {self.symbol} amount, {largest}")
        return base_units

    def from_base_units(self, base_units: int) -> Decimal:
        return Decimal(f"{base_units}e-{self.decimals}")  # exact (scaleb would round past 28 digits)

    def format(self, base_units: int) -> str:
        """An exact decimal string in whole units with at least two places (``"1500.00"``, ``"0.015"``)."""
        whole, _, fraction = format(self.from_base_units(base_units).normalize(_EXACT), "f").partition(".")
        return f"{whole}.{fraction.ljust(2, '0')}"


class AssetRegistry:
    def __init__(self, assets: list[Asset]) -> None:
        self._assets = {asset.symbol: asset for asset in assets}

    def get(self, symbol: str, field_name: str = "asset") -> Asset:
        try:
            return self._assets[symbol]
        except KeyError:
            known = ", ".join(sorted(self._assets))
            raise InvalidCreditRequest(field_name, f"unknown asset {symbol!r}; known: {known}") from None

    def symbols(self) -> list[str]:
        return sorted(self._assets)

    def by_address(self, chain_name: str, address: str) -> Asset | None:
        """The asset whose token on ``chain_name`` is at ``address``, if it is one of ours."""
        wanted = address.lower()
        return next(
            (a for a in self._assets.values() if a.addresses.get(chain_name, "").lower() == wanted),
            None,
        )


def parse_amount(raw: str, field_name: str) -> Decimal:
    """A positive decimal amount given as a string of ASCII digits with an optional fraction (``"1500.00"``)."""
    if not isinstance(raw, str) or not _AMOUNT.fullmatch(raw):
        raise InvalidCreditRequest(field_name, f"not a decimal amount of ASCII digits like '1500.00': {raw!r}")
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError):
        raise InvalidCreditRequest(field_name, f"not a decimal amount: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise InvalidCreditRequest(field_name, "must be greater than zero")
    return value
