"""Assets the platform lends and takes as collateral: symbol, decimals, per-chain token address, and the USD
price used to value collateral (static on devnets; a price-feed source later).

An asset has one number of decimals on every chain: a request's amount is converted to base units once and the same
principal is offered on each chain, so the registry refuses a symbol whose tokens differ in decimals between chains
(``AssetRegistry.from_listings``) rather than mint 10^12 times the amount on one of them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

from eth_typing import ChecksumAddress

from aggregator.errors import AssetListingConflict, InvalidCreditRequest
from chain.deployment import TokenListing

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

    @classmethod
    def from_listings(
        cls, listings: Mapping[str, Mapping[str, TokenListing]], usd_prices: Mapping[str, Decimal]
    ) -> AssetRegistry:
        """The assets of the chains' token listings (chain name → the platform's name for a token → its listing)
        that have a USD price, each with its address per chain.

        Raises ``AssetListingConflict`` when one asset has different decimals on two chains, or more decimals than
        one whole unit fits the contracts' amounts."""
        decimals: dict[str, dict[str, int]] = {}
        addresses: dict[str, dict[str, ChecksumAddress]] = {}
        for chain_name, listed in listings.items():
            for symbol, listing in listed.items():
                decimals.setdefault(symbol, {})[chain_name] = listing.decimals
                addresses.setdefault(symbol, {})[chain_name] = listing.address
        assets = []
        for symbol in (symbol for symbol in decimals if symbol in usd_prices):
            assets.append(Asset(symbol, _one_decimals(symbol, decimals[symbol]), usd_prices[symbol], addresses[symbol]))
        return cls(assets)

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


def _one_decimals(symbol: str, by_chain: Mapping[str, int]) -> int:
    """The decimals ``symbol`` has on every chain, or why it cannot be lent or taken as one asset."""
    found = set(by_chain.values())
    if len(found) > 1:
        per_chain = ", ".join(f"{decimals} on {chain}" for chain, decimals in sorted(by_chain.items()))
        raise AssetListingConflict(
            f"{symbol} has different decimals per chain ({per_chain}): a request's amount is converted to base units "
            f"once for every chain, so {symbol} would be lent at the wrong size on some of them; serve the chains "
            f"whose {symbol} differs from a platform of their own (a chains file without them)"
        )
    (decimals,) = found
    if decimals >= len(str(MAX_BASE_UNITS)):
        raise AssetListingConflict(
            f"{symbol} has {decimals} decimals: one whole {symbol} is more base units than the contracts' amounts "
            f"hold ({MAX_BASE_UNITS})"
        )
    return decimals


def _repeat(atom: str, low: int, high: int) -> str:
    """``atom`` low to high times, written short."""
    if high == 0:
        return ""
    if low == high:
        return atom if low == 1 else f"{atom}{{{low}}}"
    return f"{atom}{{{low},{high}}}"


def _below(bound: str, first: int = 0, rest_at_most: bool = False) -> list[str]:
    """Regex alternatives for the digit strings below ``bound`` of its length (no leading zero when ``first`` is
    1; any shorter rest when ``rest_at_most``): ``bound``'s first i digits, a smaller digit, then any digits."""
    alternatives = []
    for i, digit in enumerate(bound):
        low = first if i == 0 else 0
        if int(digit) > low:
            top = int(digit) - 1
            smaller = str(low) if top == low else f"[{low}-{top}]"
            rest = len(bound) - i - 1
            alternatives.append(bound[:i] + smaller + _repeat("[0-9]", 0 if rest_at_most else rest, rest))
    return alternatives


def amount_pattern(decimals: int, max_base_units: int = MAX_BASE_UNITS) -> str:
    """The regular expression (ECMA 262 and Python alike) of exactly the amounts an asset of ``decimals`` takes:
    what ``parse_amount`` and ``Asset.to_base_units`` accept — ASCII digits within ``AMOUNT_PATTERN`` (30 digits on
    each side of the point), greater than zero, at most ``decimals`` significant decimal places (further places
    only as trailing zeros), at most ``max_base_units``. The OpenAPI document carries it per asset."""
    max_digits = len(str(max_base_units))
    if not 0 <= decimals < max_digits:
        raise ValueError(f"an asset of {decimals} decimals cannot hold one whole unit within {max_base_units}")
    whole, fraction = divmod(max_base_units, 10**decimals)
    top, top_fraction = str(whole), str(fraction).zfill(decimals)
    padding = _repeat("0", 0, 30 - decimals)  # zeros past the asset's decimals
    any_fraction = f"(\\.[0-9]{{1,{decimals}}}{padding})?" if decimals else "(\\.0{1,30})?"
    # a whole part below the largest: fewer digits, or as many and smaller somewhere (leading zeros up to 30 digits)
    shorter = [_repeat("0", 0, 30 - n) + "[1-9]" + _repeat("[0-9]", n - 1, n - 1) for n in range(1, len(top))]
    as_long = [_repeat("0", 0, 30 - len(top)) + alternative for alternative in _below(top, first=1)]
    below = f"({'|'.join(shorter + as_long)}){any_fraction}"
    # the largest whole part, with a fraction at most the largest's (a prefix of it, or smaller somewhere)
    top_fractions = [top_fraction[:i] + _repeat("0", 0, 30 - i) for i in range(1, decimals + 1)] + [
        alternative + padding for alternative in _below(top_fraction, rest_at_most=True)
    ]
    at_top = _repeat("0", 0, 30 - len(top)) + top
    at_top += f"(\\.({'|'.join(top_fractions)}))?" if decimals else "(\\.0{1,30})?"
    # no whole part: a fraction with a non-zero digit among the asset's places
    fractions = [
        _repeat("0", k, k) + "[1-9]" + _repeat("[0-9]", 0, decimals - 1 - k) + padding for k in range(decimals)
    ]
    below_one = [f"0{{1,30}}\\.({'|'.join(fractions)})"] if decimals else []
    return "^(" + "|".join([below, at_top, *below_one]) + ")$"


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
