"""A listed individual whose SDN name carries a title (``AL ZAWAHIRI, Dr. Ayman``) is found when the borrower leaves
the title out: the title is no given name the borrower has to give."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from compliance.decisions import Outcome
from compliance.jurisdiction import Product, load_rules
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.sanctions.lists import NameList
from compliance.sanctions.names import Role, listed_parts, spelling_key
from compliance.sanctions.screening import SanctionsScreen
from compliance.sanctions.spelling import TITLES
from compliance.service import NAME_MATCH, BorrowerFacts, ComplianceService

pytestmark = pytest.mark.unit
NOW = datetime(2024, 6, 1, tzinfo=UTC)
WALLET = "0x" + "11" * 20
# The titles an audit found before given names on the shipped list (TITLES holds these and more).
AUDITED_TITLES = frozenset({"DR", "SHAYKH", "SHEIKH", "SHEIK", "MULLAH", "MAULAWI", "QARI", "GENERAL"})


@pytest.mark.parametrize(
    ("query", "ent_num", "listed"),
    [
        ("Ayman al-Zawahiri", 2676, "AL ZAWAHIRI, Dr. Ayman"),
        ("Ahmed Ismail Yassin", 2691, "YASSIN, Sheik Ahmed Ismail"),
        ("Ahmed Shah Noorzai", 15788, "NOORZAI, Mullah Ahmed Shah"),
        ("Umar Abd al-Rahman", 2675, "AL RAHMAN, Shaykh Umar Abd"),
        ("Adam Khan Achekzai", 15516, "ACHEKZAI, Maulawi Adam Khan"),
        ("Muhammad Yaqoob Sheikh", 15417, "SHEIKH, Qari Muhammad Yaqoob"),
        ("Maki Mustafa Hamudat", 8228, "HAMUDAT, General Maki Mustafa"),
    ],
)
def test_a_titled_listed_name_is_found_without_its_title(
    screen: SanctionsScreen, query: str, ent_num: int, listed: str
) -> None:
    hits = {hit.ent_num: hit for hit in screen.screen_name(query, NOW)}
    assert ent_num in hits, f"{query!r} screened clear of {listed}"
    assert hits[ent_num].listed_name == listed
    assert hits[ent_num].near_exact  # the whole name given: a match, blocked, as without a title


def _titled(name_list: NameList, titles: frozenset[str]) -> list[tuple[int, str]]:
    """(entry, the name without its title in the borrower's order) of each listed individual written with a title
    before a given name."""
    titled = []
    for listed in name_list.names:
        if listed.sdn_type != "individual" or listed.name.count(",") != 1:
            continue
        surname, given = (spelling_key(side).split() for side in listed.name.split(","))
        if len(given) >= 2 and given[0] in titles:
            titled.append((listed.ent_num, " ".join([*given[1:], *surname])))
    return titled


@pytest.mark.parametrize("titles", [AUDITED_TITLES, TITLES], ids=["audited", "all"])
def test_every_titled_individual_on_the_shipped_list_is_found_without_the_title(
    screen: SanctionsScreen, name_list: NameList, titles: frozenset[str]
) -> None:
    titled = _titled(name_list, titles)
    assert len(titled) >= 22
    missed = [(ent, query) for ent, query in titled if ent not in {h.ent_num for h in screen.screen_name(query, NOW)}]
    assert missed == []


def test_a_title_given_still_pairs_and_a_name_of_titles_only_keeps_its_given_name(screen: SanctionsScreen) -> None:
    with_title = {hit.ent_num: hit for hit in screen.screen_name("Dr. Ayman al-Zawahiri", NOW)}
    assert with_title[2676].near_exact
    assert "DR~DR" in with_title[2676].why
    roles = {p.word: p.role for p in listed_parts("HASSAN, Sheikh", individual=True)}
    assert roles == {"HASSAN": Role.SURNAME, "SHEIKH": Role.GIVEN}  # the title stands for the name
    roles = {p.word: p.role for p in listed_parts("NOORZAI, Mullah Ahmed Shah", individual=True)}
    assert roles == {"NOORZAI": Role.SURNAME, "MULLAH": Role.TITLE, "AHMED": Role.GIVEN, "SHAH": Role.MIDDLE}


def test_a_credit_request_by_a_titled_listed_individual_is_not_allowed(screen: SanctionsScreen) -> None:
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=bytes(range(32)))
    kyc = KycStatus("app-1", "b1", KycState.APPROVED, KycTier.ENHANCED, (), NOW)
    clean = service.screen_credit_request(
        BorrowerFacts("b0", WALLET, "Jane Doe", "US-FL"), Product.DEFI, Decimal("1000"), kyc
    )
    assert clean.outcome is Outcome.ALLOW  # the request is otherwise allowed: only the name refuses it
    record = service.screen_credit_request(
        BorrowerFacts("b1", WALLET, "Ayman al-Zawahiri", "US-FL"), Product.DEFI, Decimal("1000"), kyc
    )
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == [NAME_MATCH]
    assert "SDN entry 2676" in record.reasons[0].message
