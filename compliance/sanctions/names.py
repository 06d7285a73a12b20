"""Name normalization and fuzzy scoring for sanctions screening.

Two keys per name, each compared word-order-blind with rapidfuzz's ``token_sort_ratio``:

* the *spelling key*: transliterated to ASCII (diacritics dropped, a few letters spelled out), upper case,
  punctuation turned into spaces, legal-form words (LLC, LIMITED, JSC, GMBH, ...) and the comma of "SURNAME, Given"
  removed;
* the *sound key*: the spelling key with the letter groups that romanizations of the same name disagree on folded
  together (KH/H, PH/F, OU/OO/U, EE/I, Y/I, J/DJ/DZH, W/V, Q/K, double letters, ...), so that MOHAMMAD, MUHAMMED and
  MOHAMED land close.

The score is the better of the two. ``score(a, b)`` is the pairwise score the labelled sample is measured with, and
``NameIndex`` applies the same score to a whole list at rapidfuzz's C speed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

LEGAL_FORMS = frozenset(
    [
        "LLC",
        "LLP",
        "LP",
        "LTD",
        "LIMITED",
        "LIABILITY",
        "COMPANY",
        "CO",
        "CORP",
        "CORPORATION",
        "INC",
        "INCORPORATED",
        "PLC",
        "SA",
        "SAS",
        "SARL",
        "SRL",
        "SPA",
        "BV",
        "NV",
        "AG",
        "GMBH",
        "KG",
        "OHG",
        "OOO",
        "ZAO",
        "OAO",
        "PAO",
        "PJSC",
        "JSC",
        "CJSC",
        "OJSC",
        "AO",
        "TOO",
        "FZE",
        "FZCO",
        "FZC",
        "DMCC",
        "PTE",
        "PVT",
        "PTY",
        "AS",
        "AB",
        "OY",
        "KFT",
        "SP",
        "ZOO",
        "SDN",
        "BHD",
        "TICARET",
        "SIRKETI",
        "AS",
        "LTDA",
        "CIA",
        "SAPI",
        "DE",
        "CV",
        "ANONIM",
        "LIMITADA",
        "EIRL",
        "EOOD",
        "DOO",
        "JOINT",
        "STOCK",
        "PRIVATE",
        "PUBLIC",
        "THE",
        "GROUP",
        "HOLDING",
        "HOLDINGS",
        "ENTERPRISE",
        "ENTERPRISES",
    ]
)

_SPELLED = str.maketrans(
    {
        "ß": "ss",
        "Æ": "AE",
        "æ": "ae",
        "Ø": "O",
        "ø": "o",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "ı": "i",
        "Œ": "OE",
        "œ": "oe",
        "Þ": "TH",
        "þ": "th",
        "ʼ": "",
        "’": "",
        "'": "",
        "`": "",
    }
)
_NON_ALNUM = re.compile(r"[^A-Z0-9]+")

# Ordered: longer groups first. Each pair folds spellings that romanizations of one name alternate between.
_SOUND_FOLDS: tuple[tuple[str, str], ...] = (
    ("DZH", "J"),
    ("TCH", "CH"),
    ("SCH", "SH"),
    ("DJ", "J"),
    ("ZH", "J"),
    ("KH", "H"),
    ("GH", "G"),
    ("PH", "F"),
    ("TH", "T"),
    ("CK", "K"),
    ("OU", "U"),
    ("OO", "U"),
    ("EE", "I"),
    ("IE", "I"),
    ("EI", "I"),
    ("EY", "I"),
    ("AY", "AI"),
    ("Y", "I"),
    ("W", "V"),
    ("Q", "K"),
    ("C", "K"),
    ("X", "KS"),
    ("Z", "S"),
    ("O", "U"),
    ("E", "I"),
)
_DOUBLE = re.compile(r"([A-Z])\1+")


def spelling_key(name: str) -> str:
    """ASCII upper case, punctuation as spaces, legal-form words dropped."""
    text = unicodedata.normalize("NFKD", name.translate(_SPELLED))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper().replace("&", " AND ")
    words = [w for w in _NON_ALNUM.split(text) if w]
    kept = [w for w in words if w not in LEGAL_FORMS]
    return " ".join(kept or words)


def _sound_word(word: str) -> str:
    for old, new in _SOUND_FOLDS:
        word = word.replace(old, new)
    word = _DOUBLE.sub(r"\1", word)
    # "H" after a vowel or at the end is mostly silent in romanizations (MOHAMMAD / MUHAMAD, ALLAH / ALA).
    return re.sub(r"(?<=[AIU])H", "", word) or word


def sound_key(name: str) -> str:
    return " ".join(_sound_word(w) for w in spelling_key(name).split())


def compact_key(name: str) -> str:
    """The sound key without spaces, in the given word order: catches words joined or split (SHIP MANAGEMENT)."""
    return sound_key(name).replace(" ", "")


def _subset(a: str, b: str) -> float:
    # A name given without a middle name or patronymic: every word of the shorter found in the longer. Only for
    # names of two words or more, and discounted, so that one common word never matches on its own.
    if min(a.count(" "), b.count(" ")) < 1:
        return 0.0
    return SUBSET_WEIGHT * fuzz.token_set_ratio(a, b)


SUBSET_WEIGHT = 0.92


def score(a: str, b: str) -> float:
    """0..100: how alike two names are, blind to word order, case, punctuation, legal forms and romanization."""
    sound_a, sound_b = sound_key(a), sound_key(b)
    return max(
        fuzz.token_sort_ratio(spelling_key(a), spelling_key(b)),
        fuzz.token_sort_ratio(sound_a, sound_b),
        fuzz.ratio(compact_key(a), compact_key(b)),
        _subset(sound_a, sound_b),
    )


@dataclass(frozen=True)
class NameCandidate:
    index: int
    score: float


class NameIndex:
    """The listed names, keyed once, searched with the same score as ``score``."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._spelling = [spelling_key(n) for n in names]
        self._sound = [sound_key(n) for n in names]
        self._compact = [compact_key(n) for n in names]

    def __len__(self) -> int:
        return len(self._names)

    def search(self, query: str, threshold: float, limit: int = 5) -> list[NameCandidate]:
        """The listed names scoring at least ``threshold`` against ``query``, best first (same score as ``score``)."""
        found: set[int] = set()
        sound = sound_key(query)
        passes = (
            (spelling_key(query), self._spelling, fuzz.token_sort_ratio, threshold),
            (sound, self._sound, fuzz.token_sort_ratio, threshold),
            (compact_key(query), self._compact, fuzz.ratio, threshold),
            (sound, self._sound, fuzz.token_set_ratio, threshold / SUBSET_WEIGHT),
        )
        for key, keys, scorer, cutoff in passes:
            if cutoff > 100:
                continue
            for _, _, index in process.extract(key, keys, scorer=scorer, score_cutoff=cutoff, limit=limit * 8):
                found.add(index)
        best = {index: score(query, self._names[index]) for index in found}
        best = {index: value for index, value in best.items() if value >= threshold}
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [NameCandidate(index, value) for index, value in ranked]


def exact_keys(names: Iterable[str]) -> set[str]:
    return {spelling_key(n) for n in names}
