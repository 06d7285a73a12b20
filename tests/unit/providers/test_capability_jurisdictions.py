"""A lender's declared jurisdictions, as a registration gives them: compared with the borrower's jurisdiction as it is
kept (upper case). ``["us-ny"]`` was stored as written and compared exactly with "US-NY": the lender was silently never
asked; a name ("New York") was taken as well."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from api.routers.providers import CapabilitiesIn
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
