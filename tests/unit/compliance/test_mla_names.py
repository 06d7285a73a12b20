"""The names the MLA status is asked about (``compliance.mla``): the DoD's service matches a last name as its records
spell it, so a covered borrower is asked about in each spelling the KYC provider may have accepted."""

from __future__ import annotations

from datetime import date

import pytest

from compliance.kyc import same_name
from compliance.mla import CoveredPeriod, covered_on, mla_queries, normalize_name

pytestmark = pytest.mark.unit

BORN, AS_OF = date(1985, 12, 10), date(2026, 11, 29)
LISTED = CoveredPeriod("Hopper", BORN, "123456789", date(2020, 1, 1))


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Hopper", "Hopper"),
        (" Hopper ", "Hopper"),
        ("Van  Buren", "Van Buren"),
        ("Ｈｏｐｐｅｒ", "Hopper"),  # fullwidth letters, NFKC
        ("Hop\u00adper", "Hopper"),  # a soft hyphen, invisible
        ("Höpper", "Höpper"),  # accents are the name's: kept
    ],
)
def test_a_name_is_kept_normalized(typed: str, kept: str) -> None:
    assert normalize_name(typed) == kept


@pytest.mark.parametrize("last_name", ["Hopper", "Hopper ", "HOPPER", "Höpper", "Ｈｏｐｐｅｒ", "Hop\u200bper"])
def test_every_spelling_the_kyc_accepts_is_asked_about_and_one_is_the_services(last_name: str) -> None:
    assert same_name(f"Grace {last_name}", "Grace Hopper"), "the KYC provider accepts it against the passport"
    queries = mla_queries(last_name, "Grace", BORN, "123456789", AS_OF)
    assert any(covered_on([LISTED], query) for query in queries)
    assert {(q.date_of_birth, q.ssn_or_dod_id, q.as_of) for q in queries} == {(BORN, "123456789", AS_OF)}


def test_a_name_in_latin_letters_is_asked_about_once() -> None:
    (query,) = mla_queries(" Hopper", "Grace ", BORN, "123456789", AS_OF)
    assert (query.last_name, query.first_name) == ("Hopper", "Grace")
    accented = mla_queries("Łukasiewicz", "Jürgen", BORN, "123456789", AS_OF)
    assert [(q.last_name, q.first_name) for q in accented] == [("Łukasiewicz", "Jürgen"), ("Lukasiewicz", "Jurgen")]


def test_the_simulated_service_matches_the_spelling_it_lists() -> None:
    """As strict as the DoD's: the platform, not the service, knows the spellings the KYC accepted."""
    (accented,) = [q for q in mla_queries("Höpper", "Grace", BORN, "123456789", AS_OF) if q.last_name == "Höpper"]
    assert not covered_on([LISTED], accented)
