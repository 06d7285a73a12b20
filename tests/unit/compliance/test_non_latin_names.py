"""A name in a script the screen cannot spell in Latin letters (Cyrillic, Arabic, CJK, Greek) is never taken for
clear: its Latin letters are screened, and it is held for a manual review saying it could not be screened in Latin
script. Without a transliteration these names reached the matcher as an empty or partial key and screened clear."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from aggregator.errors import ComplianceDenied
from aggregator.quote_store import InMemoryQuotingStore
from api.schemas import IdentityIn
from compliance.decisions import DecisionKind, Outcome
from compliance.jurisdiction import Product, load_rules
from compliance.kyc import IdentityProfile, KycState, KycStatus, KycTier
from compliance.sanctions.names import spelling_key, unspelled_letters
from compliance.sanctions.review import PriorReview, ReviewState, identity_fingerprint
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import NAME_MATCH, BorrowerFacts, ComplianceService
from tests.support.quoting import SPEC, borrower_file, quoting_service, shipped_compliance
from tests.support.screening import screen_accept

pytestmark = pytest.mark.unit
NOW = datetime(2024, 6, 1, tzinfo=UTC)
WALLET = "0x" + "11" * 20
NAME_NOT_SCREENED = "sanctions.name-not-screened"
NOT_LATIN = ["Рамзан Кадыров", "Владимир Путин", "أيمن الظواهري", "习近平", "Αλέξης Τσίπρας", "김정은"]


@pytest.fixture(scope="module")
def service(screen: SanctionsScreen) -> ComplianceService:
    return ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))


def _request(service: ComplianceService, name: str) -> tuple[Outcome, list[str], list[str]]:
    kyc = KycStatus("app-1", "b1", KycState.APPROVED, KycTier.ENHANCED, (), NOW)
    record = service.screen_credit_request(
        BorrowerFacts("b1", WALLET, name, "US-FL"), Product.DEFI, Decimal("1000"), kyc
    )
    return record.outcome, [r.code for r in record.reasons], [r.message for r in record.reasons]


def test_letters_with_no_latin_spelling_are_found_and_accents_are_not() -> None:
    for name in NOT_LATIN:
        assert unspelled_letters(name), name
    assert spelling_key("Рамзан Кадыров") == ""  # why such a name screened clear
    assert unspelled_letters("Ramzan Kadyrov") == ""
    assert unspelled_letters("José Widoblo-Hernández, Łódź Straße, Ærø") == ""  # Latin with accents is spelt
    assert unspelled_letters("Vladimir Путин") == "ПУТИН"


@pytest.mark.parametrize("name", NOT_LATIN)
def test_a_name_in_another_script_is_held_for_review_not_allowed(service: ComplianceService, name: str) -> None:
    assert _request(service, "Jane Doe")[0] is Outcome.ALLOW  # the request is otherwise allowed
    outcome, codes, messages = _request(service, name)
    assert outcome is Outcome.REVIEW
    assert codes == [NAME_NOT_SCREENED]
    assert "could not be screened in Latin script" in messages[0]
    assert not set(unspelled_letters(name).lower()) & set(messages[0].lower())  # kept in the clear: no letter of it
    record = screen_accept(service, BorrowerFacts("b1", WALLET, name, "US-FL"), "quote-1")
    assert record.outcome is Outcome.REVIEW  # the re-screen at acceptance holds too


def test_the_latin_letters_of_a_mixed_name_are_still_screened(service: ComplianceService) -> None:
    outcome, codes, _ = _request(service, "Ayman al-Zawahiri أيمن الظواهري")
    assert outcome is Outcome.DENY  # the Latin name alone is a near-exact match
    assert codes == [NAME_MATCH, NAME_NOT_SCREENED]


def test_the_api_takes_such_names_as_an_identity() -> None:
    identity = IdentityIn.model_validate(
        {"first_name": "Рамзан", "last_name": "Кадыров", "date_of_birth": "1976-10-05", "country": "US-FL"}
    )
    assert (identity.first_name, identity.last_name) == ("Рамзан", "Кадыров")


async def test_a_credit_request_in_another_script_is_refused_as_held_for_review() -> None:
    store = InMemoryQuotingStore()
    held = replace(borrower_file(), identity=IdentityProfile("Рамзан", "Кадыров", date(1976, 10, 5), "US-FL"))
    with pytest.raises(ComplianceDenied) as refused:
        await quoting_service(store, shipped_compliance()).request_credit(held, SPEC)
    assert [code for code, _message in refused.value.reasons] == [NAME_NOT_SCREENED]
    assert {(r.kind, r.outcome) for r in store.tables.decision_records} == {
        (DecisionKind.CREDIT_REQUEST, Outcome.REVIEW)
    }
    assert store.tables.requests == {}
    (review,) = store.tables.reviews.values()  # a review to give a verdict on, not an SDN entry's
    ((_code, message),) = refused.value.reasons
    assert f"(review {review})" in message
    fingerprint = next(r.unscreened_identity for r in store.tables.decision_records)
    assert (held.id, fingerprint) in store.tables.reviews


# --- a reviewer's verdict on a name not screened ---------------------------------------------------------------

KADYROV = BorrowerFacts("b1", WALLET, "Рамзан Кадыров", "US-FL", date_of_birth=date(1976, 10, 5))


def _verdict(service: ComplianceService, facts: BorrowerFacts, state: ReviewState) -> PriorReview:
    return PriorReview(None, service.identity_fingerprint(facts), state)


def test_the_held_identity_is_fingerprinted_under_the_platform_key(service: ComplianceService) -> None:
    record = screen_accept(service, KADYROV, "quote-1")
    assert record.unscreened_identity == identity_fingerprint(
        bytes(range(32)), "b1", "Рамзан Кадыров", date(1976, 10, 5)
    )
    assert "Кадыров" not in record.unscreened_identity
    assert identity_fingerprint(bytes(32), "b1", "Рамзан Кадыров", date(1976, 10, 5)) != record.unscreened_identity
    assert _request(service, "Jane Doe")[0] is Outcome.ALLOW


def test_a_cleared_identity_is_no_longer_held_at_request_or_accept(service: ComplianceService) -> None:
    cleared = replace(KADYROV, sanctions_reviews=(_verdict(service, KADYROV, ReviewState.CLEARED),))
    kyc = KycStatus("app-1", "b1", KycState.APPROVED, KycTier.ENHANCED, (), NOW)
    request = service.screen_credit_request(cleared, Product.DEFI, Decimal("1000"), kyc)
    assert (request.outcome, request.reasons, request.unscreened_identity) == (Outcome.ALLOW, (), None)
    accept = screen_accept(service, cleared, "quote-1")
    assert (accept.outcome, accept.unscreened_identity) == (Outcome.ALLOW, None)


def test_a_confirmed_identity_is_refused(service: ComplianceService) -> None:
    confirmed = replace(KADYROV, sanctions_reviews=(_verdict(service, KADYROV, ReviewState.CONFIRMED),))
    record = screen_accept(service, confirmed, "quote-1")
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == [NAME_MATCH]
    assert record.unscreened_identity == service.identity_fingerprint(KADYROV)  # the review it refers to


@pytest.mark.parametrize(
    "changed",
    [
        replace(KADYROV, full_name="Рамзан Кадиров"),  # another name
        replace(KADYROV, date_of_birth=date(1976, 10, 6)),  # another date of birth
        replace(KADYROV, borrower_id="b2"),  # another borrower
    ],
)
def test_a_clearance_does_not_carry_over_to_another_identity(
    service: ComplianceService, changed: BorrowerFacts
) -> None:
    verdicts = (_verdict(service, KADYROV, ReviewState.CLEARED),)
    record = screen_accept(service, replace(changed, sanctions_reviews=verdicts), "quote-1")
    assert record.outcome is Outcome.REVIEW
    assert [r.code for r in record.reasons] == [NAME_NOT_SCREENED]
    assert record.unscreened_identity == service.identity_fingerprint(changed) != verdicts[0].entry_fingerprint


def test_a_clearance_of_the_name_leaves_its_latin_letters_screened(service: ComplianceService) -> None:
    mixed = BorrowerFacts("b1", WALLET, "Ayman al-Zawahiri أيمن الظواهري", "US-FL", date_of_birth=date(1951, 6, 19))
    cleared = replace(mixed, sanctions_reviews=(_verdict(service, mixed, ReviewState.CLEARED),))
    record = screen_accept(service, cleared, "quote-1")
    assert [r.code for r in record.reasons] == [NAME_MATCH]  # the SDN entry's match stands
