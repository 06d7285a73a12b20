"""Invisible format characters in a name — a soft hyphen, a zero-width space or joiner, a word joiner, a bidi mark,
the combining grapheme joiner — are deleted before it is split into words: they join, never split. "Nicolas
Ma\\u00addu\\u00adro Mo\\u00adros" was screened as NICOLAS MA DU RO MO ROS, passed clear and was quoted, while the
plain name is a match."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from compliance.kyc import IdentityDocument, IdentityProfile, check_document
from compliance.sanctions.names import spelling_key
from compliance.sanctions.screening import SanctionsScreen
from compliance.sanctions.spelling import drop_invisible

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 29, tzinfo=UTC)
INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u2063", "\u034f"]


def _hidden(name: str, mark: str) -> str:
    """Every word of ``name`` with ``mark`` between each of its letters."""
    return " ".join(mark.join(word) for word in name.split())


@pytest.mark.parametrize("mark", INVISIBLE)
def test_an_invisible_character_inside_a_word_does_not_split_it(mark: str) -> None:
    assert spelling_key(_hidden("Nicolás Maduro Moros", mark)) == "NICOLAS MADURO MOROS"
    assert drop_invisible(f"Ива{mark}н") == "Иван"


@pytest.mark.parametrize("mark", INVISIBLE)
def test_a_listed_name_written_with_invisible_characters_is_still_a_match(screen: SanctionsScreen, mark: str) -> None:
    plain = screen.screen_name("Nicolas Maduro Moros", NOW, limit=1)
    hidden = screen.screen_name(_hidden("Nicolas Maduro Moros", mark), NOW, limit=1)
    assert plain
    assert plain[0].near_exact
    assert [(h.ent_num, h.score, h.near_exact) for h in hidden] == [(h.ent_num, h.score, h.near_exact) for h in plain]


def test_kyc_compares_names_without_their_invisible_characters() -> None:
    profile = IdentityProfile("Рамзан", "Ка\u00adды\u200bров", date(1976, 10, 5), "US-FL")
    document = IdentityDocument("passport", "X1", "Рамзан", "Кадыров", date(1976, 10, 5), "US", date(2030, 1, 1))
    assert "kyc.name-mismatch" not in {r.code for r in check_document(profile, document, NOW.date(), 18)}
    other = replace(document, last_name="Кадиров")
    assert "kyc.name-mismatch" in {r.code for r in check_document(profile, other, NOW.date(), 18)}
