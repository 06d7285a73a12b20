"""The per-asset amount pattern the OpenAPI document carries (``aggregator.assets.amount_pattern``) takes exactly the
amounts the API takes (``parse_amount`` then ``Asset.to_base_units``): near 2^96-1 base units, at the asset's last
decimal place and one past it, with leading and trailing zeros, and on any string of the common pattern's shape."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator.assets import AMOUNT_PATTERN, MAX_BASE_UNITS, Asset, amount_pattern, parse_amount
from aggregator.errors import InvalidCreditRequest

pytestmark = pytest.mark.unit

DECIMALS = (0, 1, 6, 8, 18, 28)


def api_takes(asset: Asset, raw: str) -> bool:
    if not re.fullmatch(AMOUNT_PATTERN, raw):  # the request schema's own check
        return False
    try:
        asset.to_base_units(parse_amount(raw, "amount"), "amount")
    except InvalidCreditRequest:
        return False
    return True


def written(base_units: int, decimals: int, leading: int = 0, trailing: int = 0) -> str:
    whole, fraction = divmod(base_units, 10**decimals)
    text = "0" * leading + str(whole)
    if decimals or trailing:
        text += "." + str(fraction).zfill(decimals) + "0" * trailing
    return text


@pytest.mark.parametrize("decimals", DECIMALS)
def test_the_boundaries(decimals: int) -> None:
    asset, pattern = Asset("X", decimals, Decimal(1)), re.compile(amount_pattern(decimals))
    for base_units in (1, 10**decimals, MAX_BASE_UNITS - 1, MAX_BASE_UNITS, MAX_BASE_UNITS + 1, 0):
        for leading, trailing in ((0, 0), (1, 0), (0, 30 - decimals), (30 - len(str(base_units)), 1)):
            raw = written(base_units, decimals, leading, trailing)
            assert bool(pattern.fullmatch(raw)) is api_takes(asset, raw), raw
    one_place_too_many = "1." + "0" * decimals + "1"
    assert not pattern.fullmatch(one_place_too_many)
    assert not api_takes(asset, one_place_too_many)
    assert pattern.fullmatch(written(MAX_BASE_UNITS, decimals))
    assert not pattern.fullmatch(written(MAX_BASE_UNITS + 1, decimals))


digits = st.text(st.sampled_from("0000123456789"), min_size=1, max_size=31)


@settings(max_examples=200, deadline=None)
@given(
    decimals=st.sampled_from(DECIMALS),
    whole=digits,
    fraction=st.none() | digits,
)
@example(decimals=6, whole="79228162514264337593543", fraction="950335")
@example(decimals=6, whole="79228162514264337593543", fraction="950336")
@example(decimals=18, whole="0", fraction="000000000000000001000000000000")
def test_the_pattern_takes_what_the_api_takes(decimals: int, whole: str, fraction: str | None) -> None:
    raw = whole if fraction is None else f"{whole}.{fraction}"
    asset = Asset("X", decimals, Decimal(1))
    assert bool(re.fullmatch(amount_pattern(decimals), raw)) is api_takes(asset, raw)


def test_an_asset_that_cannot_hold_one_unit_has_no_pattern() -> None:
    with pytest.raises(ValueError, match="cannot hold one whole unit"):
        amount_pattern(len(str(MAX_BASE_UNITS)))
