"""compliance.canonical.to_json_value's exact-type fast path gives what the general conversion gives."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from compliance.canonical import _to_json_value, canonical_json, to_json_value
from compliance.errors import ComplianceInputError

pytestmark = pytest.mark.unit


class Grade(enum.Enum):
    A = 1


class Side(enum.StrEnum):
    BUY = "buy"


def test_plain_and_nested_values_convert_as_before() -> None:
    value = {
        "s": "x",
        "b": True,
        "n": None,
        "i": 2**53 - 1,
        "neg": -(2**53 - 1),
        "d": Decimal("12.50"),
        "when": datetime(2026, 11, 26, 12, tzinfo=UTC),
        "day": date(2026, 11, 26),
        "raw": b"\x01\x02",
        "enum": Grade.A,
        "strenum": Side.BUY,
        "list": [1, ("a", Decimal("1")), {"k": [None, False]}],
        "set": frozenset({"b", "a"}),
    }
    assert to_json_value(value) == _to_json_value(value)
    assert canonical_json(value) == canonical_json(dict(value))


@pytest.mark.parametrize(
    "bad", [2**53, -(2**53), 1.5, {1: "key not a string"}, [2**60], {"nested": {"x": 0.1}}, object()]
)
def test_refusals_are_kept(bad: object) -> None:
    with pytest.raises(ComplianceInputError):
        to_json_value(bad)
