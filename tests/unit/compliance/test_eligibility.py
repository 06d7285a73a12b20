"""The identity on file against the account it borrows on (``compliance.eligibility``), checked by the platform at
quote and at accept: the age of majority of the account's jurisdiction, not of the country the borrower typed, and the
identity's country of residence (not prohibited, and the account's)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from compliance.decisions import Outcome
from compliance.eligibility import age_on, check_age, check_residence, normalize_code, residence_agrees
from compliance.jurisdiction import Product, load_rules
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import BorrowerFacts, ComplianceService
from tests.support.screening import screen_accept

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
    record = screen_accept(service, minor, "q-1")
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == ["kyc.under-age"]


@pytest.mark.parametrize(
    ("jurisdiction", "residence", "agrees"),
    [
        ("US-FL", "US-FL", True),
        ("US-FL", " us-fl ", True),  # an identity stored before codes were checked
        ("GB", "GB", True),
        ("GB", "GB-LND", True),  # a whole-country account covers its subdivisions
        ("US-FL", "US", False),  # the account's state is not the one verified
        ("US-FL", "US-NY", False),
        ("US-FL", "IR", False),
        ("GB", "GBR", False),
        ("GB", "DE-BE", False),
    ],
)
def test_the_residence_agrees_with_the_account_when_the_accounts_rules_cover_it(
    jurisdiction: str, residence: str, agrees: bool
) -> None:
    assert residence_agrees(jurisdiction, residence) is agrees


def test_a_resident_of_a_prohibited_jurisdiction_is_refused_with_its_citation() -> None:
    rules = load_rules()
    prohibited, mismatch = check_residence(rules, "US-FL", "ir")
    assert (prohibited.code, mismatch.code) == ("jurisdiction.prohibited", "jurisdiction.residence-mismatch")
    assert "IR" in prohibited.message
    assert prohibited.citation == rules.prohibited["IR"]
    (crimea, _) = check_residence(rules, "US-FL", "UA-43")  # its code listed, not its country's
    assert crimea.code == "jurisdiction.prohibited"
    assert [r.code for r in check_residence(rules, "US-FL", "US-NY")] == ["jurisdiction.residence-mismatch"]
    assert check_residence(rules, "US-FL", "US-FL") == check_residence(rules, "US-FL", None) == []


@pytest.mark.parametrize("residence", ["IR", "US-NY"])
def test_a_credit_request_and_an_accept_of_a_resident_elsewhere_are_denied(
    service: ComplianceService, residence: str
) -> None:
    elsewhere = BorrowerFacts("b-1", WALLET, "Jane Doe", "US-FL", date_of_birth=date(1985, 12, 10), residence=residence)
    quoted = service.screen_credit_request(elsewhere, Product.DEFI, Decimal("1500"), APPROVED)
    accepted = screen_accept(service, elsewhere, "q-1")
    for record in (quoted, accepted):
        assert record.outcome is Outcome.DENY
        assert "jurisdiction.residence-mismatch" in [r.code for r in record.reasons]
    at_home = replace(elsewhere, residence="US-FL")
    assert service.screen_credit_request(at_home, Product.DEFI, Decimal("1500"), APPROVED).allowed
    assert screen_accept(service, at_home, "q-1").allowed


@pytest.mark.parametrize(
    ("kyc", "code"),
    [
        (None, "kyc.not-approved"),
        (replace(APPROVED, state=KycState.REJECTED, tier=KycTier.NONE), "kyc.not-approved"),
        (replace(APPROVED, state=KycState.PENDING, tier=KycTier.NONE), "kyc.not-approved"),  # another identity, pending
        (replace(APPROVED, tier=KycTier.BASIC), "kyc.tier-too-low"),  # BASIC covers 2,500 of DeFi
    ],
)
def test_an_accept_without_an_approved_kyc_at_the_quotes_tier_is_denied(
    service: ComplianceService, kyc: KycStatus | None, code: str
) -> None:
    borrower = BorrowerFacts("b-1", WALLET, "Jane Doe", "US-FL", date_of_birth=date(1985, 12, 10), residence="US-FL")
    record = service.screen_acceptance(borrower, "q-1", kyc=kyc, product=Product.DEFI, amount=Decimal("3000"))
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == [code]
    approved = service.screen_acceptance(borrower, "q-1", kyc=APPROVED, product=Product.DEFI, amount=Decimal("3000"))
    assert approved.allowed
