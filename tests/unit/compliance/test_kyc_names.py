"""The local KYC rules compare the name on a document with the profile's: on spelling keys for Latin names (accents,
case and punctuation aside), on the NFKC, case-folded Unicode text for names in other scripts, whose spelling keys
are empty — "Иван Петров" once matched a document in the name "Рамзан Кадыров"."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from compliance.kyc import IdentityDocument, IdentityProfile, check_document

pytestmark = pytest.mark.unit
TODAY = date(2026, 11, 22)
PROFILE = IdentityProfile("Иван", "Петров", date(1990, 5, 17), "US-FL")
DOCUMENT = IdentityDocument("passport", "X1234567", "Иван", "Петров", date(1990, 5, 17), "US", date(2030, 1, 1))


def _name_mismatch(profile: IdentityProfile, first: str, last: str) -> bool:
    document = replace(DOCUMENT, first_name=first, last_name=last)
    return "kyc.name-mismatch" in {r.code for r in check_document(profile, document, TODAY, 18)}


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Рамзан", "Кадыров"),  # another Cyrillic name
        ("Ivan", "Petrov"),  # a romanization: not the same text, and no transliteration to tell
        ("أيمن", "الظواهري"),
        ("Иван", "Петрова"),
    ],
)
def test_a_different_name_in_another_script_is_a_mismatch(first: str, last: str) -> None:
    assert _name_mismatch(PROFILE, first, last)


@pytest.mark.parametrize(
    ("profile", "first", "last"),
    [
        (PROFILE, "ИВАН", "ПЕТРОВ"),  # case
        (PROFILE, "  Иван ", "Петров"),  # spacing
        (IdentityProfile("Ｙｕｋｉ", "山田", date(1990, 5, 17), "US-FL"), "Yuki", "山田"),  # fullwidth letters (NFKC)
        (IdentityProfile("José", "Pérez-Núñez", date(1990, 5, 17), "US-FL"), "JOSE", "PEREZ NUNEZ"),  # Latin as before
    ],
)
def test_the_same_name_written_otherwise_is_no_mismatch(profile: IdentityProfile, first: str, last: str) -> None:
    assert not _name_mismatch(profile, first, last)
