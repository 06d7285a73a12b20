"""Assets the platform lends and takes as collateral: symbol, decimals, per-chain token address, and the USD
price used to value collateral (static on devnets; a price-feed source later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from eth_typing import ChecksumAddress

from aggregator.errors import InvalidCreditRequest


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    decimals: int
    usd_price: Decimal
    addresses: dict[str, ChecksumAddress] = field(default_factory=dict)

    def to_base_units(self, amount: Decimal, field_name: str) -> int:
        """``amount`` in whole units to integer base units; refuses more precision than the asset has."""
        scaled = amount.scaleb(self.decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidCreditRequest(field_name, f"{self.symbol} has {self.decimals} decimals")
        return int(scaled)

    def from_base_units(self, base_units: int) -> Decimal:
        return Decimal(base_units).scaleb(-self.decimals)

    def format(self, base_units: int) -> str:
        """An exact decimal string in whole units with at least two places (``"1500.00"``, ``"0.015"``)."""
        whole, _, fraction = format(self.from_base_units(base_units).normalize(), "f").partition(".")
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
    """A positive decimal amount given as a string."""
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError):
        raise InvalidCreditRequest(field_name, f"not a decimal amount: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise InvalidCreditRequest(field_name, "must be greater than zero")
    return value
