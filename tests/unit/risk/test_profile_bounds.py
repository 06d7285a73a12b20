"""Every integer of a credit profile is bounded where the canonical JSON of the decision's inputs (RFC 8785, numbers
as doubles, exact to 2^53) still holds it: a count past the bound is refused as the profile is read (the API's 422),
never stored to fail every later credit request of the borrower in ``inputs_hash`` (a 500 before); a profile stored
before the bound reads its count as unknown."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from risk.policy import assess, inputs_hash
from risk.profile import MAX_EXISTING_CREDITS, CreditProfile, CreditRequestFacts

pytestmark = pytest.mark.unit

REQUEST = CreditRequestFacts(amount=Decimal("3000"), asset="USDC", term_days=360, purpose="used_car")
JSON_SAFE = 2**53 - 1


def _integer_fields() -> dict[str, dict[str, Any]]:
    """The profile's integer fields as its JSON Schema documents them."""
    found = {}
    for name, schema in CreditProfile.model_json_schema()["properties"].items():
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "integer":
                found[name] = option
    return found


def test_every_integer_field_is_documented_with_a_bound_a_double_holds() -> None:
    fields = _integer_fields()
    assert set(fields) == {"existing_credits"}  # a new integer field needs its bound (and this test) too
    for name, schema in fields.items():
        assert 0 <= schema["minimum"] <= schema["maximum"] <= JSON_SAFE, name


@pytest.mark.parametrize("count", [MAX_EXISTING_CREDITS + 1, 2**53 + 1, 10**80])
def test_a_count_past_the_bound_is_refused_naming_the_field(count: int) -> None:
    with pytest.raises(ValidationError) as refused:
        CreditProfile.model_validate_json(f'{{"existing_credits": {count}}}')
    (error,) = refused.value.errors()
    assert error["loc"] == ("existing_credits",)
    assert error["msg"] == f"Input should be less than or equal to {MAX_EXISTING_CREDITS}"


@pytest.mark.parametrize("count", [0, 1, MAX_EXISTING_CREDITS])
def test_a_count_within_the_bound_is_hashed_and_assessed(count: int) -> None:
    profile = CreditProfile.model_validate_json(f'{{"existing_credits": {count}, "housing": "own"}}')
    assert profile.existing_credits == count
    hashed = inputs_hash(profile, REQUEST, None, "scorecard-v1", "policy-v1", key=bytes(32))
    assert hashed.startswith("0x")
    assert hashed != inputs_hash(CreditProfile(housing="own"), REQUEST, None, "scorecard-v1", "policy-v1", bytes(32))
    assert assess(profile, REQUEST, None).inputs_hash.startswith("0x")


def test_a_profile_stored_before_the_bound_reads_its_count_as_unknown() -> None:
    stored = {"housing": "own", "existing_credits": 9007199254740993}
    profile = CreditProfile.stored(stored)
    assert profile == CreditProfile(housing="own")
    assert stored["existing_credits"] == 9007199254740993  # the stored document is not changed
    assert CreditProfile.stored({"existing_credits": MAX_EXISTING_CREDITS}).existing_credits == MAX_EXISTING_CREDITS
    assert CreditProfile.stored({"existing_credits": -1}).existing_credits is None
