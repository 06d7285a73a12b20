"""The compact name index (arrays of part numbers and hashed keys) gives what pairing the names directly gives: the
same parts, the same pairing (joins included), and a search finding the names a query is written like."""

from __future__ import annotations

import pytest

from compliance.sanctions.names import NameIndex, listed_parts, pair_names, query_parts

pytestmark = pytest.mark.unit

LISTED = [
    ("HUSSEIN, Mazen Ali", True),
    ("AL-TARIQ TRADING COMPANY LLC", False),
    ("SHIP MANAGEMENT SERVICES FZE", False),
    ("P P ENTERPRISES LTD", False),
    ("PETROV, Ivan", True),
    ("MOHAMMAD, Abd Al Rahman", True),
    ("NIKE ENGINEERING S.A.", False),
]
QUERIES = [
    "Mazen Hussein",
    "M. Ali Hussein",
    "ALTARIQ TRADING",
    "SHIPMANAGEMENT SERVICES",
    "PP ENTERPRISES",
    "Ivan Petrov",
    "Abdal Rahman Mohammed",
    "NIK E ENGINEERING",
    "Unrelated Name",
]


@pytest.fixture(scope="module")
def index() -> NameIndex:
    return NameIndex([name for name, _ in LISTED], [individual for _, individual in LISTED])


def test_parts_and_pairings_are_those_of_the_names_themselves(index: NameIndex) -> None:
    assert len(index) == len(LISTED)
    for position, (name, individual) in enumerate(LISTED):
        parts = listed_parts(name, individual)
        assert index.parts(position) == parts
        for query in QUERIES:
            direct = pair_names(query_parts(query), parts, index.weights)
            assert index.pair(query, position) == direct, (query, name)


def test_search_finds_a_name_written_joined_or_reordered(index: NameIndex) -> None:
    found = {query: [c.index for c in index.search(query, 71.0)] for query in QUERIES}
    assert found["SHIPMANAGEMENT SERVICES"][:1] == [2]
    assert found["PP ENTERPRISES"][:1] == [3]
    assert found["Ivan Petrov"][:1] == [4]
    assert found["ALTARIQ TRADING"][:1] == [1]
    assert found["Unrelated Name"] == []
    for query, indexes in found.items():  # every hit scores what pairing the two names directly scores
        for candidate in index.search(query, 71.0):
            assert candidate.score == pair_names(query_parts(query), index.parts(candidate.index), index.weights).score
            assert candidate.index in indexes


def test_an_empty_list_finds_nothing() -> None:
    empty = NameIndex([])
    assert len(empty) == 0
    assert empty.search("Mazen Hussein", 50.0) == []
