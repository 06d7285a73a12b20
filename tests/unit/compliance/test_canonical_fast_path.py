"""compliance.canonical.to_json_value's exact-type fast path gives what the general conversion gives."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

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


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.text(st.characters(codec="utf-8")),  # control characters, quotes, non-ASCII and astral included
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_canonical_json_is_rfc8785s_bytes(value: object) -> None:
    """The standard library's encoder (ASCII text) and rfc8785 (the rest) give rfc8785's bytes."""
    assert canonical_json(value) == bytes(rfc8785.dumps(to_json_value(value)))


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, -5, ""], "c": {"z": "\\"}},
        {"text": '"\\\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f'},  # every escape RFC 8785 writes, and DEL left as it is
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order puts the astral key first, code point order second
        {"name": "Zoë", "city": "Zürich"},
        [],
        {},
    ],
)
def test_canonical_json_edge_cases(value: object) -> None:
    assert canonical_json(value) == bytes(rfc8785.dumps(to_json_value(value)))
