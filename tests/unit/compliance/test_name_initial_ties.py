"""An initial that could stand for the listed given name or for an optional middle name pairs with the given name:
on a tie of similarity a required listed part is paired first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.sanctions.names import TokenWeights, listed_parts, pair_names, query_parts
from compliance.sanctions.screening import NAME_MATCH_THRESHOLD, SanctionsScreen

pytestmark = pytest.mark.unit
NOW = datetime(2024, 6, 1, tzinfo=UTC)
PUTIN = 35096  # PUTIN, Vladimir Vladimirovich


def test_an_initial_stands_for_the_given_name_not_the_patronymic(screen: SanctionsScreen) -> None:
    explained = screen.explain("V. Putin", PUTIN)
    assert explained is not None
    assert "V~VLADIMIR 0.90" in explained.why
    assert "listed parts not given: VLADIMIROVICH" in explained.why
    assert explained.score >= NAME_MATCH_THRESHOLD
    hits = {hit.ent_num: hit for hit in screen.screen_name("V. Putin", NOW)}
    assert PUTIN in hits
    assert hits[PUTIN].listed_name == "PUTIN, Vladimir Vladimirovich"
    assert not hits[PUTIN].near_exact  # an initial is no full name: held for a reviewer, not blocked


@pytest.mark.parametrize(
    ("query", "listed", "given"),
    [
        ("V. Putin", "PUTIN, Vladimir Vladimirovich", "VLADIMIR"),
        ("M. Hussein", "HUSSEIN, Mazen Muhammad Mahmoud", "MAZEN"),  # M could be any of three
    ],
)
def test_on_a_tie_the_initial_pairs_with_the_required_given_name(query: str, listed: str, given: str) -> None:
    pairing = pair_names(query_parts(query), listed_parts(listed, individual=True), TokenWeights.uniform())
    assert (query[0], given, 0.90) in pairing.pairs
    assert given not in pairing.unpaired_listed
