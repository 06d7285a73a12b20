"""Name matching for sanctions screening: name parts compared one by one, weighted by how rare they are in the list.

A name is split into parts after normalisation (``spelling_key``: ASCII, upper case, punctuation as spaces, dotted
abbreviations such as ``S.A.``/``S.R.L.`` joined before they are split, legal forms dropped). A listed individual
written ``SURNAME, Given Middle`` has roles: surname parts, the first given name, and middle names (optional: a
borrower may leave them out). Every other listed name (entities, aliases without a comma) has plain words.

Each listed part is paired with at most one part of the query (any order). How alike two parts are
(``part_similarity``):

* 1.00 same spelling; 0.97 same *sound key* (romanization groups folded: KH/H, PH/F, OU/U, EE/I, Y/I, DJ/J, ...);
* 0.95 same *skeleton* (one inner vowel changed: MOHAMMAD/MUHAMMED, YUSUF/YOUSSEF, AHMAD/AHMED) with the same first
  letter; 0.93 two neighbouring letters swapped (a typo);
* 0.90 an initial for a given name (``M.`` for MOHAMMAD);
* only for surnames and plain words: otherwise the rapidfuzz ratio of the sound keys when it reaches 80 (a typo or an
  unusual romanization). A **given name is never matched merely by being a few letters away**: YASSER is not NASSER,
  ARINA is not IRINA, IVAN is not JUAN.

Each part weighs ``log(N / df)``² where ``df`` is how many listed names contain it (``TokenWeights``): a generic word
(COMPANY, ENGINEERING, PETROCHEMICAL, TRADING, MOHAMMAD) counts little, a distinctive one decides. The score is

    100 * sum(weight(listed part) * similarity) / (weight of the listed parts that are required
                                                    + weight of middle names that were paired
                                                    + EXTRA_PART_PENALTY * weight of query parts left unpaired)

A listed name scoring 100 with every part paired at sound-key level or better is a *near-exact* full-name match.
``NameIndex`` finds the listed names worth scoring through inverted indexes of the part keys (and rapidfuzz over the
vocabulary for misspelt parts), bounds each candidate's best possible score, and scores only those that can pass:
first in numpy over every name a key reached (the weight reached against the weight required — names with many
particles such as AL, ABD, BIN reach thousands of listed names through them, nearly all hopeless), then exactly per
remaining name; an initial in the query counts only the given names it could stand for.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Levenshtein

LEGAL_FORMS = frozenset(
    """LLC LLP LP LTD LIMITED LIABILITY COMPANY CO CORP CORPORATION INC INCORPORATED PLC SA SAS SARL
    SRL SPA BV NV AG GMBH KG OHG OOO ZAO OAO PAO PJSC JSC CJSC OJSC
    AO TOO FZE FZCO FZC DMCC PTE PVT PTY AS AB OY KFT SP ZOO SDN
    BHD TICARET SIRKETI LTDA CIA SAPI DE CV ANONIM LIMITADA EIRL EOOD DOO JOINT STOCK PRIVATE
    PUBLIC THE SAL SE SPZOO SRO GIE SCS SNC SCA CA SOCIEDAD ANONIMA RL RESPONSABILIDAD OBSHCHESTVO
    OGRANICHENNOI OGRANICHENNOY OTVETSTVENNOSTYU AKTSIONERNOE ZAKRYTOE OTKRYTOE PUBLICHNOE TOVARISHCHESTVO""".split()  # noqa: SIM905 -- a word list reads better as words
)
# Long legal-form words are recognised misspelt too (LIMITID, COMPANI, CROPORATION).
_LONG_FORMS = tuple(sorted(w for w in LEGAL_FORMS if len(w) >= 6))
# Name particles that a borrower often leaves out of a listed surname: optional when unpaired.
PARTICLES = frozenset(
    """AL EL ABD ABU BIN BINT IBN BEN DA DE DEL DOS DAS DI VAN VON
    DER LA LE""".split()  # noqa: SIM905 -- a word list reads better as words
)

EXTRA_PART_PENALTY = 0.6
# A listed individual's first given name or surname that the query does not give at all scales the score down.
MISSING_NAME_FACTOR = 0.8
QUERY_INITIAL = 0.90  # "M. Hussein" for HUSSEIN, Mazen
LISTED_INITIAL = 0.75  # "Mazen Hussein" for HUSSEIN, M.: any M would do
FUZZY_PART_FLOOR = 80.0
NEAR_EXACT = 0.97

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
# S.A., S.R.L., S. de R.L., L.L.C., O.O.O.: single letters each followed by a dot are one abbreviation.
_DOTTED = re.compile(r"\b[A-Z](?:\.[A-Z])+\b\.?")

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
_INNER_VOWELS = re.compile(r"(?<=.)[AIU]")


def _ascii_upper(name: str) -> str:
    text = name.translate(_SPELLED)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.upper().replace("&", " AND ")
    return _DOTTED.sub(lambda m: m.group(0).replace(".", "") + " ", text)


def _words(name: str) -> list[str]:
    return [w for w in _NON_ALNUM.split(_ascii_upper(name)) if w]


@lru_cache(maxsize=65_536)
def is_legal_form(word: str) -> bool:
    if word in LEGAL_FORMS or (len(word) >= 4 and sound_word(word) in _FORM_SOUNDS):
        return True
    return len(word) >= 6 and any(OSA.distance(word, form, score_cutoff=1) <= 1 for form in _LONG_FORMS)


def _join_letters(words: list[str]) -> list[str]:
    """Runs of single letters that spell a legal form become that word (S A → SA, L L C → LLC)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and len(words[j]) == 1:
            j += 1
        if j - i >= 2 and "".join(words[i:j]) in LEGAL_FORMS:
            out.append("".join(words[i:j]))
            i = j
        else:
            out.append(words[i])
            i += 1
    return out


def _drop_legal_forms(words: list[str]) -> list[str]:
    """Legal-form words dropped, with single letters beside them (the S of "S. DE R.L.", the Z of "SP. Z O.O.")."""
    words = _join_letters(words)
    form = [is_legal_form(w) for w in words]
    kept = [
        w
        for i, w in enumerate(words)
        if not form[i]
        and not (len(w) == 1 and w.isalpha() and ((i > 0 and form[i - 1]) or (i + 1 < len(words) and form[i + 1])))
    ]
    return kept or words


def spelling_key(name: str) -> str:
    """ASCII upper case, punctuation as spaces, dotted abbreviations joined, legal-form words dropped."""
    return " ".join(_drop_legal_forms(_words(name)))


@lru_cache(maxsize=65_536)
def sound_word(word: str) -> str:
    """One word with the letter groups that romanizations of a name alternate between folded together."""
    for old, new in _SOUND_FOLDS:
        word = word.replace(old, new)
    # "H" after a vowel or at the end is mostly silent in romanizations (MOHAMMAD / MUHAMAD, ALLAH / ALA).
    word = re.sub(r"(?<=[AIU])H", "", word) or word
    return _DOUBLE.sub(r"\1", word)


@lru_cache(maxsize=65_536)
def skeleton(word: str) -> str:
    """The sound key without its inner vowels (first letter kept): vowels are where romanizations disagree most."""
    return _DOUBLE.sub(r"\1", _INNER_VOWELS.sub("", sound_word(word)))


_FORM_SOUNDS = frozenset(sound_word(w) for w in LEGAL_FORMS if len(w) >= 4)


def sound_key(name: str) -> str:
    return " ".join(sound_word(w) for w in spelling_key(name).split())


def compact_key(name: str) -> str:
    """The sound key without spaces, in the given word order."""
    return sound_key(name).replace(" ", "")


class Role(StrEnum):
    SURNAME = "surname"
    GIVEN = "given"  # the first given name: must match as a given name
    MIDDLE = "middle"  # further given names: optional
    WORD = "word"  # a part of a name with no roles (entities, aliases written without a comma)


@dataclass(frozen=True, slots=True)
class Part:
    word: str  # spelling
    sound: str
    role: Role

    @property
    def strict(self) -> bool:
        return self.role in (Role.GIVEN, Role.MIDDLE)

    @property
    def optional(self) -> bool:
        return self.role is Role.MIDDLE or (self.role is Role.SURNAME and self.word in PARTICLES)


@lru_cache(maxsize=131_072)
def _part(word: str, role: Role) -> Part:
    return Part(word, sound_word(word), role)


def listed_parts(name: str, individual: bool | None = None) -> tuple[Part, ...]:
    """The parts of a listed name, with roles when an individual's name is written ``SURNAME, Given Middle``
    (``individual=None``: a name with one comma and no legal form is taken for an individual's)."""
    text = _ascii_upper(name)
    words = [w for w in _NON_ALNUM.split(text) if w]
    if individual is None:
        individual = not any(is_legal_form(w) for w in words if w not in PARTICLES)
    if text.count(",") == 1 and individual:
        surname, given = ([w for w in _NON_ALNUM.split(side) if w] for side in text.split(","))
        if surname and given:
            roles = [Role.GIVEN] + [Role.MIDDLE] * (len(given) - 1)
            return tuple(_part(w, Role.SURNAME) for w in surname) + tuple(
                _part(w, r) for w, r in zip(given, roles, strict=True)
            )
    return tuple(_part(w, Role.WORD) for w in _drop_legal_forms(words))


def query_parts(name: str) -> tuple[Part, ...]:
    return tuple(_part(w, Role.WORD) for w in spelling_key(name).split())


def part_similarity(query: Part, listed: Part) -> float:
    """0..1: how alike a query part is to a listed part, under the listed part's role (see the module docstring)."""
    if query.word == listed.word:
        return 1.0
    if query.sound == listed.sound:
        return 0.97
    if len(query.word) == 1 or len(listed.word) == 1:
        short, long = (query, listed) if len(query.word) == 1 else (listed, query)
        if not listed.strict or long.word[0] != short.word:
            return 0.0
        return QUERY_INITIAL if short is query else LISTED_INITIAL
    if (
        query.sound[0] == listed.sound[0]
        and len(query.sound) == len(listed.sound)
        and (listed.strict or len(listed.sound) >= 5)
        and skeleton(query.word) == skeleton(listed.word)
        and Levenshtein.distance(query.sound, listed.sound) <= 1
    ):
        return 0.95
    if (
        len(listed.word) >= 4
        and OSA.distance(query.word, listed.word) == 1
        and sorted(query.word) == sorted(listed.word)
    ):
        return 0.93
    if listed.strict:
        return 0.0
    ratio = fuzz.ratio(query.sound, listed.sound)
    return ratio / 100 if ratio >= FUZZY_PART_FLOOR and min(len(query.sound), len(listed.sound)) >= 4 else 0.0


@dataclass(frozen=True)
class TokenWeights:
    """``log(N / df)²`` per sound key over the listed names; a part not on the list weighs as the rarest."""

    df: Mapping[str, int]
    total: int

    @classmethod
    def uniform(cls) -> TokenWeights:
        return cls({}, 1)

    @classmethod
    def of(cls, names: Iterable[Sequence[Part]]) -> TokenWeights:
        df: dict[str, int] = defaultdict(int)
        total = 0
        for parts in names:
            total += 1
            for sound in {p.sound for p in parts}:
                df[sound] += 1
        return cls(dict(df), total)

    def __call__(self, sound: str) -> float:
        if self.total <= 1:
            return 1.0
        return math.log((self.total + 1) / (self.df.get(sound, 0) + 0.5)) ** 2


@dataclass(frozen=True)
class Pairing:
    """The parts paired between a query and one listed name, and what came of it."""

    score: float
    near_exact: bool
    pairs: tuple[tuple[str, str, float], ...]  # (query part, listed part, similarity)
    unpaired_listed: tuple[str, ...]
    unpaired_query: tuple[str, ...]

    def why(self) -> str:
        """A reviewer's reading of the score."""
        paired = ", ".join(f"{q}~{w} {s:.2f}" for q, w, s in self.pairs) or "nothing"
        text = f"paired {paired}"
        if self.unpaired_listed:
            text += f"; listed parts not given: {' '.join(self.unpaired_listed)}"
        if self.unpaired_query:
            text += f"; extra query parts: {' '.join(self.unpaired_query)}"
        return text


Joins = tuple[tuple[int, int, str], ...]  # (first part, parts joined, sound key of the joined word)


def _joins(parts: tuple[Part, ...]) -> Joins:
    """Neighbouring parts (three, then two, at each start) that another name might write as one word: letters with
    letters (an acronym), or after a word (NIK E / NIKE); an initial stays an initial."""
    found = []
    for i in range(len(parts)):
        for width in (3, 2):
            pieces = parts[i : i + width]
            if len(pieces) == width and (len({len(p.word) == 1 for p in pieces}) == 1 or len(pieces[0].word) > 1):
                found.append((i, width, sound_word("".join(p.word for p in pieces))))
    return tuple(found)


def _merge_joined(
    parts: tuple[Part, ...], weights: list[float], sounds: Set[str], joins: Joins
) -> tuple[tuple[Part, ...], list[float]]:
    """Join neighbouring parts that the other name (whose part sounds are ``sounds``) writes as one word (SHIP
    MANAGEMENT / SHIPMANAGEMENT, P P / PP, AL TARIQ / ALTARIQ); a joined part weighs what its pieces weighed
    together. ``joins`` are the parts' possible joins (``_joins``): when none is among ``sounds``, as for almost
    every pair of names, nothing is joined."""
    if not any(sound in sounds for _, _, sound in joins):
        return parts, weights
    out: list[Part] = []
    out_weights: list[float] = []
    i = 0
    while i < len(parts):
        for width in (3, 2):
            pieces = parts[i : i + width]
            joined = "".join(p.word for p in pieces)
            same_kind = len({len(p.word) == 1 for p in pieces}) == 1 or len(pieces[0].word) > 1
            if len(pieces) == width and same_kind and sound_word(joined) in sounds:
                out.append(_part(joined, Role.WORD))
                out_weights.append(sum(weights[i : i + width]))
                i += width
                break
        else:
            out.append(parts[i])
            out_weights.append(weights[i])
            i += 1
    return tuple(out), out_weights


@dataclass(frozen=True, slots=True)
class _Side:
    """One name's parts prepared for pairing: their weights, possible joins and set of sound keys."""

    parts: tuple[Part, ...]
    weights: list[float]
    joins: Joins
    sounds: frozenset[str]

    @classmethod
    def of(cls, parts: tuple[Part, ...], weights: list[float]) -> _Side:
        return cls(parts, weights, _joins(parts), frozenset(p.sound for p in parts))


def pair_names(
    query: tuple[Part, ...],
    listed: tuple[Part, ...],
    weights: TokenWeights,
    listed_weights: Sequence[float] | None = None,
) -> Pairing:
    """Pair the parts one to one, best similarity first, and score the pairing (see the module docstring)."""
    lw = list(listed_weights) if listed_weights is not None else [weights(p.sound) for p in listed]
    return _pair(_Side.of(query, [weights(q.sound) for q in query]), _Side.of(listed, lw), {})


def _pair(query_side: _Side, listed_side: _Side, similarities: dict[tuple[Part, Part], float]) -> Pairing:
    """``pair_names`` on prepared sides; ``similarities`` memoizes ``part_similarity`` across one search."""
    listed, lw = _merge_joined(listed_side.parts, listed_side.weights, query_side.sounds, listed_side.joins)
    query, qw = _merge_joined(query_side.parts, query_side.weights, listed_side.sounds, query_side.joins)
    candidates = []
    for qi, q in enumerate(query):
        for li, lp in enumerate(listed):
            similarity = similarities.get((q, lp))
            if similarity is None:
                similarity = similarities[(q, lp)] = part_similarity(q, lp)
            if similarity > 0:
                candidates.append((similarity, qi, li))
    candidates.sort(reverse=True)
    used_q: set[int] = set()
    used_l: set[int] = set()
    pairs: list[tuple[str, str, float]] = []
    earned = 0.0
    for similarity, qi, li in candidates:
        if qi in used_q or li in used_l:
            continue
        used_q.add(qi)
        used_l.add(li)
        pairs.append((query[qi].word, listed[li].word, similarity))
        earned += lw[li] * similarity
    owed = sum(lw[i] for i, p in enumerate(listed) if i in used_l or not p.optional)
    owed += EXTRA_PART_PENALTY * sum(qw[i] for i in range(len(query)) if i not in used_q)
    score = 100.0 * earned / owed if owed else 0.0
    if any(i not in used_l and p.role in (Role.GIVEN, Role.SURNAME) and not p.optional for i, p in enumerate(listed)):
        score *= MISSING_NAME_FACTOR
    unpaired_listed = tuple(p.word for i, p in enumerate(listed) if i not in used_l)
    unpaired_query = tuple(q.word for i, q in enumerate(query) if i not in used_q)
    near_exact = not unpaired_listed and not unpaired_query and all(s >= NEAR_EXACT for _, _, s in pairs)
    return Pairing(round(score, 2), near_exact and bool(pairs), tuple(pairs), unpaired_listed, unpaired_query)


def score(a: str, b: str, weights: TokenWeights | None = None) -> float:
    """0..100: how alike query ``a`` is to listed name ``b`` (uniform part weights unless ``weights`` are given)."""
    return pair_names(query_parts(a), listed_parts(b), weights or TokenWeights.uniform()).score


@dataclass(frozen=True)
class NameCandidate:
    index: int
    score: float
    near_exact: bool = False
    why: str = ""
    pairing: Pairing | None = field(default=None, compare=False)


_POSITION_BITS = 8
_POSITION_MASK = (1 << _POSITION_BITS) - 1


def _one_edit_keys(key: str) -> set[str]:
    """The key itself and the key with each one letter left out (from five letters): two keys one edit apart share
    one of these (SymSpell's trick). Parts shorter than four letters are never paired by spelling distance."""
    if len(key) < 4:
        return set()
    return {key} | ({key[:i] + key[i + 1 :] for i in range(len(key))} if len(key) >= 5 else set())


class NameIndex:
    """The listed names, split into parts once, with inverted indexes over their part keys.

    Candidates are the listed names sharing a key with the query: a part's sound key, its skeleton, a key one
    letter short (misspellings of parts of five letters or more), or two neighbouring parts joined. Each candidate's
    best possible score is bounded from the weights of the parts it shares, and only those that can pass are paired.
    """

    def __init__(self, names: Sequence[str], individuals: Sequence[bool] | None = None) -> None:
        self._names = list(names)
        kinds: Sequence[bool | None] = individuals if individuals is not None else [None] * len(self._names)
        self._parts = [listed_parts(n, kind) for n, kind in zip(self._names, kinds, strict=True)]
        self.weights = TokenWeights.of(self._parts)
        self._part_weights = [tuple(self.weights(p.sound) for p in parts) for parts in self._parts]
        self._required = [
            sum(w for p, w in zip(parts, ws, strict=True) if not p.optional)
            for parts, ws in zip(self._parts, self._part_weights, strict=True)
        ]
        # What _bound needs per name, so that it looks only at the positions a query reached.
        self._optional = [tuple(p.optional for p in parts) for parts in self._parts]
        #: the given names (position, first letter, whether an initial): what an initial in the query may pair with
        self._given = [
            tuple((i, p.word[0], len(p.word) == 1) for i, p in enumerate(parts) if p.strict) for parts in self._parts
        ]
        self._sides = [_Side.of(parts, list(ws)) for parts, ws in zip(self._parts, self._part_weights, strict=True)]
        postings: dict[str, list[int]] = defaultdict(list)
        for index, parts in enumerate(self._parts):
            keys: set[tuple[str, int]] = set()
            for position, part in enumerate(parts[:_POSITION_MASK]):
                keys |= {(part.sound, position), ("~" + skeleton(part.word), position)}
            for position in range(min(len(parts), _POSITION_MASK) - 1):  # two words the query may write as one
                joined = sound_word(parts[position].word + parts[position + 1].word)
                keys |= {(joined, position), (joined, position + 1)}
            for key, position in keys:
                postings[key].append(index << _POSITION_BITS | position)
        # One flat array of postings (name << 8 | position), grouped by key, with the weight of the part each names:
        # a search gathers its keys' slices and sums weights per name in numpy, not in a Python loop per posting.
        flat: list[int] = []
        self._spans: dict[str, tuple[int, int]] = {}
        for key, found in postings.items():
            self._spans[key] = (len(flat), len(flat) + len(found))
            flat += found
        self._posting_array = np.array(flat, dtype=np.int64)
        self._posting_weights = np.array(
            [self._part_weights[p >> _POSITION_BITS][p & _POSITION_MASK] for p in flat], dtype=np.float64
        )
        self._required_array = np.array(self._required, dtype=np.float64)
        self._given_weight = np.array(
            [sum(ws[i] for i, _, _ in given) for ws, given in zip(self._part_weights, self._given, strict=True)],
            dtype=np.float64,
        )
        # One-edit neighbours over the vocabulary of part sounds (not per occurrence): key -> the sounds sharing it.
        near: dict[str, list[str]] = defaultdict(list)
        for sound in {p.sound for parts in self._parts for p in parts}:
            for key in _one_edit_keys(sound):
                near[key].append(sound)
        self._near = {key: tuple(sounds) for key, sounds in near.items()}

    def __len__(self) -> int:
        return len(self._names)

    def parts(self, index: int) -> tuple[Part, ...]:
        return self._parts[index]

    def pair(self, query: str, index: int) -> Pairing:
        return _pair(self._query_side(query_parts(query)), self._sides[index], {})

    def _query_side(self, parts: tuple[Part, ...]) -> _Side:
        return _Side.of(parts, [self.weights(q.sound) for q in parts])

    def _keys(self, query: tuple[Part, ...]) -> set[str]:
        keys: set[str] = set()
        for part in query:
            if len(part.word) < 2 and not part.word.isdigit():
                continue
            keys |= {part.sound, "~" + skeleton(part.word)}
            keys |= {sound for near in _one_edit_keys(part.sound) for sound in self._near.get(near, ())}
        words = [p.word for p in query]
        keys |= {sound_word(a + b) for a, b in itertools.pairwise(words)}
        keys |= {sound_word(a + b + c) for a, b, c in zip(words, words[1:], words[2:], strict=False)}
        return keys

    def _bound(self, index: int, positions: set[int], initials: frozenset[str], letters: frozenset[str]) -> float:
        """The best score this listed name could reach if every part sharing a key with the query paired fully, and
        every given name an initial could pair with did too: one starting with an initial of the query
        (``initials``), or a listed initial that a query word (first ``letters``) starts with."""
        weights, optional = self._part_weights[index], self._optional[index]
        earned = sum(weights[p] for p in positions)
        extra = sum(weights[p] for p in positions if optional[p])
        if initials:
            for position, first, initial in self._given[index]:
                if position not in positions and (first in initials or (initial and first in letters)):
                    earned += weights[position]
                    extra += weights[position] if optional[position] else 0.0
        owed = self._required[index] + extra
        return 100.0 * min(earned, owed) / owed if owed else 0.0

    def _candidates(self, parts: tuple[Part, ...], threshold: float, initials: bool) -> dict[int, set[int]]:
        """The listed names sharing a key with the query, each with the positions reached, leaving out (in numpy)
        those that cannot reach ``threshold`` even if every reached part (and with ``initials`` every given name)
        paired fully and nothing else were owed: ``earned / required``, an upper bound of ``_bound``."""
        spans = [self._spans[key] for key in self._keys(parts) if key in self._spans]
        if not spans:
            return {}
        gathered = np.concatenate([self._posting_array[start:stop] for start, stop in spans])
        reached, first = np.unique(gathered, return_index=True)  # a position reached by several keys counts once
        weights = np.concatenate([self._posting_weights[start:stop] for start, stop in spans])[first]
        names = reached >> _POSITION_BITS
        earned = np.asarray(np.bincount(names, weights=weights, minlength=len(self._names)), dtype=np.float64)
        if initials:
            earned += self._given_weight
        required = self._required_array
        # a hair of slack: the bound sums in another order than numpy does
        possible = (required <= 0) | (100.0 * earned >= (threshold - 1e-6) * required)
        kept = reached[possible[names] & (earned[names] > 0)]
        hits: dict[int, set[int]] = defaultdict(set)
        for posting in kept.tolist():
            hits[posting >> _POSITION_BITS].add(posting & _POSITION_MASK)
        return hits

    def search(self, query: str, threshold: float, limit: int = 5) -> list[NameCandidate]:
        """The listed names scoring at least ``threshold`` against ``query``, best first."""
        parts = query_parts(query)
        initials = frozenset(p.word for p in parts if len(p.word) == 1)
        letters = frozenset(p.word[0] for p in parts)
        hits = self._candidates(parts, threshold, bool(initials))
        side = self._query_side(parts)
        similarities: dict[tuple[Part, Part], float] = {}  # the same part pairs recur across candidates
        found: list[NameCandidate] = []
        for index, positions in hits.items():
            if self._bound(index, positions, initials, letters) < threshold:
                continue
            pairing = _pair(side, self._sides[index], similarities)
            if pairing.score >= threshold:
                found.append(NameCandidate(index, pairing.score, pairing.near_exact, pairing.why(), pairing))
        found.sort(key=lambda c: (-c.score, c.index))
        return found[:limit]


def exact_keys(names: Iterable[str]) -> set[str]:
    return {spelling_key(n) for n in names}
