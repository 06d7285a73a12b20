"""The identity on file against the account it borrows on (``compliance.eligibility``), checked by the platform at
quote and at accept: the age of majority of the account's jurisdiction, not of the country the borrower typed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from compliance.decisions import Outcome
from compliance.eligibility import age_on, check_age, normalize_code
from compliance.jurisdiction import Product, load_rules
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import BorrowerFacts, ComplianceService

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
WALLET = "0x" + "12" * 20
NINETEEN = date(2007, 11, 22)  # 19 years old on NOW's date: of age in Florida (18), not in Mississippi (21)
APPROVED = KycStatus("applicant-1", "b-1", KycState.APPROVED, KycTier.STANDARD, (), NOW)


@pytest.fixture(scope="module")
def service(screen: SanctionsScreen) -> ComplianceService:
    return ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))


def test_ages_are_whole_years_reached_on_the_birthday() -> None:
    assert age_on(date(2005, 11, 22), date(2026, 11, 22)) == 21
    assert age_on(date(2005, 11, 23), date(2026, 11, 22)) == 20
    assert age_on(date(2004, 2, 29), date(2025, 2, 28)) == 20  # a leap-day birthday is reached on 1 March
    assert age_on(date(2004, 2, 29), date(2025, 3, 1)) == 21


def test_codes_are_compared_as_the_rules_write_them() -> None:
    assert normalize_code(" us-ms ") == "US-MS"
    assert load_rules().age_of_majority(" us-ms ") == 21  # a blank no longer falls back to the default 18


@pytest.mark.parametrize(
    ("jurisdiction", "born", "refused"),
    [
        ("US-MS", NINETEEN, True),
        ("us-ms", NINETEEN, True),
        ("US-MS", date(2005, 11, 22), False),  # 21 today
        ("US-AL", date(2007, 11, 23), True),  # 18, and 19 in Alabama
        ("US-FL", NINETEEN, False),
        ("US-FL", date(2008, 11, 23), True),  # 17
        ("US-FL", None, False),  # no identity on file: the KYC check refuses it
    ],
)
def test_the_age_of_majority_is_the_accounts_jurisdictions(jurisdiction: str, born: date | None, refused: bool) -> None:
    reasons = check_age(load_rules(), jurisdiction, born, NOW.date())
    assert [r.code for r in reasons] == (["kyc.under-age"] if refused else [])
    if refused:
        assert jurisdiction.upper() in reasons[0].message


def test_a_credit_request_of_a_borrower_under_age_in_the_accounts_jurisdiction_is_denied(
    service: ComplianceService,
) -> None:
    minor = BorrowerFacts("b-1", WALLET, "Jane Doe", "US-MS", date_of_birth=NINETEEN)
    record = service.screen_credit_request(minor, Product.TRADITIONAL, Decimal("1500"), APPROVED)
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == ["kyc.under-age"]
    assert "US-MS (21)" in record.reasons[0].message
    adult = BorrowerFacts("b-1", WALLET, "Jane Doe", "US-FL", date_of_birth=NINETEEN)
    assert service.screen_credit_request(adult, Product.TRADITIONAL, Decimal("1500"), APPROVED).allowed


def test_an_accept_of_a_borrower_under_age_in_the_accounts_jurisdiction_is_denied(service: ComplianceService) -> None:
    minor = BorrowerFacts("b-1", WALLET, "Jane Doe", "US-MS", date_of_birth=NINETEEN)
    record = service.screen_acceptance(minor, "q-1")
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == ["kyc.under-age"]
