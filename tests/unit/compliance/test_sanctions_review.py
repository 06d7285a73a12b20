"""The three outcomes of a name screen, and a reviewer's verdict carried into the next screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from compliance.decisions import Outcome
from compliance.errors import ComplianceInputError
from compliance.jurisdiction import load_rules
from compliance.sanctions.ofac import parse_csv_set
from compliance.sanctions.review import PriorReview, ReviewState, ReviewVerdict, ScreeningOutcome, classify
from compliance.sanctions.screening import NameHit, SanctionsScreen
from compliance.service import BorrowerFacts, ComplianceService
from tests.support.screening import screen_accept
from tests.unit.compliance.test_ofac_import import ADD, ALT, SDN

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 26, tzinfo=UTC)
WALLET = "0x" + "11" * 20


def _hit(ent_num: int = 7, near_exact: bool = False, fingerprint: str = "f1") -> NameHit:
    return NameHit("q", "LISTED", "LISTED", ent_num, "SDGT", 88.0, near_exact, "", fingerprint)


def test_no_hit_is_clear_a_hit_is_a_possible_match_a_near_exact_one_a_match() -> None:
    assert classify([]).outcome is ScreeningOutcome.CLEAR
    assert classify([_hit()]).outcome is ScreeningOutcome.POSSIBLE_MATCH
    assert classify([_hit(), _hit(8, near_exact=True)]).outcome is ScreeningOutcome.MATCH


def test_a_cleared_entry_is_not_held_again_until_it_changes() -> None:
    cleared = PriorReview(7, "f1", ReviewState.CLEARED, "id-1")
    assert classify([_hit()], [cleared], "id-1").outcome is ScreeningOutcome.CLEAR
    assert classify([_hit()], [cleared], "id-1").cleared == (_hit(),)
    assert classify([_hit(fingerprint="f2")], [cleared], "id-1").outcome is ScreeningOutcome.POSSIBLE_MATCH  # changed
    assert classify([_hit(8)], [cleared], "id-1").outcome is ScreeningOutcome.POSSIBLE_MATCH  # another entry


def test_a_clearance_holds_for_the_identity_it_was_given_for_only() -> None:
    cleared = PriorReview(7, "f1", ReviewState.CLEARED, "id-1")
    assert classify([_hit()], [cleared], "id-2").outcome is ScreeningOutcome.POSSIBLE_MATCH  # verified again since
    # a near-exact hit on another identity is a match, cleared entry or not
    assert classify([_hit(near_exact=True)], [cleared], "id-2").outcome is ScreeningOutcome.MATCH
    assert classify([_hit(near_exact=True)], [cleared], "id-1").outcome is ScreeningOutcome.CLEAR
    # a clearance stored before reviews were tied to an identity clears nothing
    legacy = PriorReview(7, "f1", ReviewState.CLEARED)
    assert classify([_hit()], [legacy], "id-1").outcome is ScreeningOutcome.POSSIBLE_MATCH
    assert classify([_hit()], [legacy]).outcome is ScreeningOutcome.POSSIBLE_MATCH


def test_a_confirmed_entry_blocks_whatever_the_identity_and_other_verdicts() -> None:
    confirmed = PriorReview(7, "f1", ReviewState.CONFIRMED, "id-1")
    assert classify([_hit()], [confirmed], "id-1").outcome is ScreeningOutcome.MATCH
    assert classify([_hit()], [confirmed], "id-2").outcome is ScreeningOutcome.MATCH
    cleared_later = PriorReview(7, "f1", ReviewState.CLEARED, "id-2")
    assert classify([_hit()], [cleared_later, confirmed], "id-2").outcome is ScreeningOutcome.MATCH


def test_a_verdict_needs_a_note_and_a_decision() -> None:
    with pytest.raises(ComplianceInputError):
        ReviewVerdict("r", ReviewState.CLEARED, "admin", " ", NOW)
    with pytest.raises(ComplianceInputError):
        ReviewVerdict("r", ReviewState.PENDING, "admin", "why", NOW)


@pytest.fixture(scope="module")
def service(screen: SanctionsScreen) -> ComplianceService:
    return ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))


def test_the_service_holds_blocks_and_honours_a_clearance(service: ComplianceService, screen: SanctionsScreen) -> None:
    held = BorrowerFacts("b1", WALLET, "Mazen Hussein", "US-FL")
    record = screen_accept(service, held, "quote-1")
    assert record.outcome is Outcome.REVIEW
    assert "sanctions.name-possible-match" in {r.code for r in record.reasons}
    hit, outcome = record.name_hits[0]
    assert outcome is ScreeningOutcome.POSSIBLE_MATCH
    assert hit.primary_name == "HUSSEIN, Mazen Ali"
    assert record.versions["ofac-sdn-names"] == screen.name_list_version

    assert record.screened_identity == service.identity_fingerprint(held)
    verdict = PriorReview(hit.ent_num, hit.entry_fingerprint, ReviewState.CLEARED, record.screened_identity)
    cleared = replace(held, sanctions_reviews=(verdict,))
    again = screen_accept(service, cleared, "quote-1")
    assert again.outcome is Outcome.ALLOW
    assert again.inputs_hash != record.inputs_hash  # the clearance is part of what the decision was made on

    # the borrower verifies again as the listed party (its full name and date of birth): the clearance was not for it
    listed = replace(cleared, full_name="Mazen Ali Hussein", date_of_birth=date(1982, 1, 1))
    changed = screen_accept(service, listed, "quote-1")
    assert changed.outcome is Outcome.DENY
    assert "sanctions.name-match" in {r.code for r in changed.reasons}
    assert changed.screened_identity != record.screened_identity

    exact = screen_accept(service, BorrowerFacts("b2", WALLET, "Mazen Ali Hussein", "US-FL"), "quote-2")
    assert exact.outcome is Outcome.DENY
    assert "sanctions.name-match" in {r.code for r in exact.reasons}


def test_a_review_names_the_list_version_that_made_the_hit_not_one_loaded_since(screen: SanctionsScreen) -> None:
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    held = screen_accept(service, BorrowerFacts("b1", WALLET, "Mazen Hussein", "US-FL"), "quote-1")
    service.screen = screen.with_names(parse_csv_set(SDN, ALT, ADD, date(2026, 11, 20)))  # a reload meanwhile
    assert service.screened_list_version([held]) == screen.name_list_version != service.screen.name_list_version
    assert service.screened_list_version([]) == service.screen.name_list_version
