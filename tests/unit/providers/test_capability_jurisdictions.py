"""A lender's declared jurisdictions, as a registration gives them: compared with the borrower's jurisdiction as it is
kept (upper case). ``["us-ny"]`` was stored as written and compared exactly with "US-NY": the lender was silently never
asked; a name ("New York") was taken as well. A country's code serves its subdivisions, as an account's covers a
residence (``compliance.jurisdiction.covers``); the rules file says which codes a registration may name."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from api.routers.providers import CapabilitiesIn
from compliance import load_rules
from compliance.eligibility import residence_agrees
from compliance.jurisdiction import covers
from providers.models import Capabilities
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit


def test_a_registrations_jurisdictions_are_kept_upper_case() -> None:
    declared = CapabilitiesIn.model_validate({"assets": ["USDC"], "jurisdictions": ["us-ny", "GB"]})
    assert declared.jurisdictions == ["US-NY", "GB"]
    capabilities = Capabilities.from_document(declared.model_dump())
    assert capabilities.accepts(REQUEST) is None  # a US-NY borrower
    assert capabilities.accepts(replace(REQUEST, jurisdiction="US-TX")) == "jurisdiction US-TX not served"


@pytest.mark.parametrize("code", ["New York", "US-NY ", "US_NY", ""])
def test_a_jurisdiction_not_written_as_a_code_is_refused(code: str) -> None:
    with pytest.raises(ValidationError, match="jurisdictions"):
        CapabilitiesIn.model_validate({"assets": ["USDC"], "jurisdictions": [code]})


def test_a_registration_stored_before_is_read_upper_case() -> None:
    stored = Capabilities.from_document({"assets": ["USDC"], "jurisdictions": ["us-ny", " us-fl"]})
    assert stored.jurisdictions == frozenset({"US-NY", "US-FL"})
    assert stored.accepts(REQUEST) is None


def test_a_countrys_code_serves_its_subdivisions_and_a_subdivision_only_itself() -> None:
    # ["US"] was compared exactly with "US-FL": a lender registered for the United States was never asked for a
    # Florida borrower, though a "US" account takes an identity resident in "US-FL" (``residence_agrees``)
    country = Capabilities.from_document({"assets": ["USDC"], "jurisdictions": ["us"]})
    state = Capabilities.from_document({"assets": ["USDC"], "jurisdictions": ["US-FL"]})
    for jurisdiction in ("US-FL", "us-ny", "US"):
        assert country.accepts(replace(REQUEST, jurisdiction=jurisdiction)) is None, jurisdiction
    assert country.accepts(replace(REQUEST, jurisdiction="GB-LND")) == "jurisdiction GB-LND not served"
    assert country.accepts(replace(REQUEST, jurisdiction="USA")) == "jurisdiction USA not served"
    assert state.accepts(replace(REQUEST, jurisdiction="us-fl")) is None
    for jurisdiction in ("US", "US-NY"):
        assert state.accepts(replace(REQUEST, jurisdiction=jurisdiction)) == f"jurisdiction {jurisdiction} not served"


@pytest.mark.parametrize(
    ("code", "covered", "expected"),
    [("US", "US-FL", True), ("us", " us-fl", True), ("US", "US", True), ("US-FL", "US", False),
     ("US-FL", "US-NY", False), ("US", "USA", False), ("GB", "US-GB", False)],
)  # fmt: skip
def test_covers_is_the_one_rule_of_lenders_and_residences(code: str, covered: str, expected: bool) -> None:
    assert covers(code, covered) is expected
    assert residence_agrees(code, covered) is expected


def test_the_rules_know_the_jurisdictions_they_serve_and_their_countries_only() -> None:
    rules = load_rules()
    assert {"US-FL", "US-NY"} <= set(rules.jurisdictions)
    assert "US" not in rules.jurisdictions
    for code in ("US-FL", "us", "GB", "de"):
        assert rules.knows(code), code
    for code in ("ZZ", "US-CA", "FR", "IR", "GB-LND"):  # IR: prohibited, not served
        assert not rules.knows(code), code
