"""A disclosure's canonical JSON and termsHash are computed once and stay what they are computed from."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from compliance.canonical import canonical_json, keccak256
from compliance.tila.disclosure import LoanTerms, disclose

pytestmark = pytest.mark.unit


def test_terms_hash_is_the_hash_of_the_canonical_json_and_does_not_change() -> None:
    terms = LoanTerms(Decimal("1500"), "USDC", 6, 1_150, 30, Decimal("7.50"), datetime(2026, 1, 5, tzinfo=UTC))
    disclosure = disclose(terms)
    first = disclosure.terms_hash()
    assert first == keccak256(canonical_json(disclosure.to_dict()))
    assert disclosure.terms_hash() is first
    assert disclosure.to_canonical_json() is disclosure.to_canonical_json()
    again = disclose(terms)
    assert again == disclosure  # the kept values are not fields: equality is unchanged
    assert again.terms_hash() == first
    other = disclose(LoanTerms(Decimal("1500"), "USDC", 6, 1_151, 30, Decimal("7.50"), terms.start))
    assert other.terms_hash() != first
