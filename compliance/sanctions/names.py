"""Name matching for sanctions screening: name parts compared one by one, weighted by how rare they are in the list.

A name is split into parts after normalisation (``spelling_key``, in ``compliance.sanctions.spelling``: ASCII, upper
case, punctuation as spaces, dotted abbreviations such as ``S.A.``/``S.R.L.`` joined before they are split, legal
forms dropped). A listed individual written ``SURNAME, Given Middle`` has roles: surname parts, the first given
name, and middle names (optional: a borrower may leave them out). Titles written before the given names
(``AL ZAWAHIRI, Dr. Ayman``, ``YASSIN, Sheik Ahmed Ismail``: ``TITLES`` in ``spelling``) are optional too, and the
first given name is the first word after them (a name written with titles only keeps its first title as the given
name: ``HASSAN, Sheikh``). Every other listed name (entities, aliases without a comma) has plain words.

Each listed part is paired with at most one part of the query (any order), best similarity first; on a tie a
required listed part is paired before an optional one (``V. Putin``: the V is VLADIMIR's, not VLADIMIROVICH's). How
alike two parts are (``part_similarity``):

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
                                                    + weight of middle names and titles that were paired
                                                    + EXTRA_PART_PENALTY * weight of query parts left unpaired)

A listed name scoring 100 with every part paired at sound-key level or better (a title may be left out) is a
*near-exact* full-name match.
``NameIndex`` finds the listed names worth scoring through inverted indexes of the part keys (and rapidfuzz over the
vocabulary for misspelt parts), bounds each candidate's best possible score, and scores only those that can pass:
first in numpy over every name a key reached (the weight reached against the weight required — names with many
particles such as AL, ABD, BIN reach thousands of listed names through them, nearly all hopeless), then exactly per
remaining name; an initial in the query counts only the given names it could stand for.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Levenshtein

from compliance.sanctions.spelling import LEGAL_FORMS as LEGAL_FORMS
from compliance.sanctions.spelling import PARTICLES as PARTICLES
from compliance.sanctions.spelling import TITLES as TITLES
from compliance.sanctions.spelling import WORD_SEPARATORS, ascii_upper, drop_legal_forms, is_legal_form
from compliance.sanctions.spelling import compact_key as compact_key
from compliance.sanctions.spelling import skeleton as skeleton
from compliance.sanctions.spelling import sound_key as sound_key
from compliance.sanctions.spelling import sound_word as sound_word
from compliance.sanctions.spelling import spelling_key as spelling_key
from compliance.sanctions.spelling import unspelled_letters as unspelled_letters

EXTRA_PART_PENALTY = 0.6
# A listed individual's first given name or surname that the query does not give at all scales the score down.
MISSING_NAME_FACTOR = 0.8
QUERY_INITIAL = 0.90  # "M. Hussein" for HUSSEIN, Mazen
LISTED_INITIAL = 0.75  # "Mazen Hussein" for HUSSEIN, M.: any M would do
FUZZY_PART_FLOOR = 80.0
NEAR_EXACT = 0.97


class Role(StrEnum):
    SURNAME = "surname"
    GIVEN = "given"  # the first given name: must match as a given name
    MIDDLE = "middle"  # further given names: optional
    TITLE = "title"  # a title before the given names (DR, SHAYKH, MULLAH): optional, matched as a given name
    WORD = "word"  # a part of a name with no roles (entities, aliases written without a comma)


@dataclass(frozen=True, slots=True)
class Part:
    word: str  # spelling
    sound: str
    role: Role

    @property
    def strict(self) -> bool:
        return self.role in (Role.GIVEN, Role.MIDDLE, Role.TITLE)

    @property
    def optional(self) -> bool:
        return self.role in (Role.MIDDLE, Role.TITLE) or (self.role is Role.SURNAME and self.word in PARTICLES)


@lru_cache(maxsize=131_072)
def _part(word: str, role: Role) -> Part:
    return Part(word, sound_word(word), role)


def listed_parts(name: str, individual: bool | None = None) -> tuple[Part, ...]:
    """The parts of a listed name, with roles when an individual's name is written ``SURNAME, Given Middle``
    (``individual=None``: a name with one comma and no legal form is taken for an individual's)."""
    text = ascii_upper(name)
    words = [w for w in WORD_SEPARATORS.split(text) if w]
    if individual is None:
        individual = not any(is_legal_form(w) for w in words if w not in PARTICLES)
    if text.count(",") == 1 and individual:
        surname, given = ([w for w in WORD_SEPARATORS.split(side) if w] for side in text.split(","))
        # a query loses its legal-form words (``spelling_key``): so does the surname, or "Ahmed Ag Albachar" could
        # never give the AG of AG ALBACHAR, Ahmed (particles stay: optional; a surname of legal forms stays whole)
        surname = [w for w in surname if w in PARTICLES or not is_legal_form(w)] or surname
        if surname and given:
            return tuple(_part(w, Role.SURNAME) for w in surname) + tuple(
                _part(w, r) for w, r in zip(given, given_roles(given), strict=True)
            )
    return tuple(_part(w, Role.WORD) for w in drop_legal_forms(words))


def given_roles(given: Sequence[str]) -> list[Role]:
    """The roles of the words after an individual's comma: titles before the first given name, then middle names.
    Titles only (``HASSAN, Sheikh``): the first of them stands for the given name."""
    titles = next((i for i, word in enumerate(given) if word not in TITLES), 0)
    return [Role.TITLE] * titles + [Role.GIVEN] + [Role.MIDDLE] * (len(given) - titles - 1)


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


def join_hashes(parts: tuple[Part, ...], sound: Callable[[str], str] = sound_word) -> list[int]:
    """The hashes of the sound keys of neighbouring parts (three, then two, at each start) that another name might
    write as one word: letters with letters (an acronym), or after a word (NIK E / NIKE); an initial stays an
    initial. Hashes, so that an index keeps them compactly (``NameIndex``)."""
    found = []
    for i in range(len(parts)):
        for width in (3, 2):
            pieces = parts[i : i + width]
            if len(pieces) == width and (len({len(p.word) == 1 for p in pieces}) == 1 or len(pieces[0].word) > 1):
                found.append(hash(sound("".join(p.word for p in pieces))))
    return found


def _merge_joined(
    parts: tuple[Part, ...], weights: list[float], other: _Side, joins: Sequence[int]
) -> tuple[tuple[Part, ...], list[float]]:
    """Join neighbouring parts that the ``other`` name writes as one word (SHIP MANAGEMENT / SHIPMANAGEMENT, P P /
    PP, AL TARIQ / ALTARIQ); a joined part weighs what its pieces weighed together. ``joins`` are the hashes of the
    parts' possible joins (``join_hashes``): when none is among the other's, as for almost every pair of names,
    nothing is joined (a hash shared by chance only costs the exact check below)."""
    if not any(join in other.sound_hashes for join in joins):
        return parts, weights
    sounds = other.sounds
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
    """One name's parts prepared for pairing: their weights, possible joins (``join_hashes``) and sound keys."""

    parts: tuple[Part, ...]
    weights: list[float]
    joins: Sequence[int]
    sounds: frozenset[str]
    sound_hashes: frozenset[int]

    @classmethod
    def of(cls, parts: tuple[Part, ...], weights: list[float], joins: Sequence[int] | None = None) -> _Side:
        sounds = frozenset(p.sound for p in parts)
        found = join_hashes(parts) if joins is None else joins
        return cls(parts, weights, found, sounds, frozenset(map(hash, sounds)))


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
    listed, lw = _merge_joined(listed_side.parts, listed_side.weights, query_side, listed_side.joins)
    query, qw = _merge_joined(query_side.parts, query_side.weights, listed_side, query_side.joins)
    candidates = []
    for qi, q in enumerate(query):
        for li, lp in enumerate(listed):
            similarity = similarities.get((q, lp))
            if similarity is None:
                similarity = similarities[(q, lp)] = part_similarity(q, lp)
            if similarity > 0:
                candidates.append((similarity, not lp.optional, qi, li))
    candidates.sort(reverse=True)  # on a tie a required listed part first: an initial is the given name's
    used_q: set[int] = set()
    used_l: set[int] = set()
    pairs: list[tuple[str, str, float]] = []
    earned = 0.0
    for similarity, _required, qi, li in candidates:
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
    unpaired_names = any(i not in used_l and p.role is not Role.TITLE for i, p in enumerate(listed))
    near_exact = not unpaired_names and not unpaired_query and all(s >= NEAR_EXACT for _, _, s in pairs)
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
_uncached_sound_word = sound_word.__wrapped__  # the build's joined words would only crowd the cache out


def _one_edit_keys(key: str) -> set[str]:
    """The key itself and the key with each one letter left out (from five letters): two keys one edit apart share
    one of these (SymSpell's trick). Parts shorter than four letters are never paired by spelling distance."""
    if len(key) < 4:
        return set()
    return {key} | ({key[:i] + key[i + 1 :] for i in range(len(key))} if len(key) >= 5 else set())


def _key_hash(key: str) -> int:
    """A key as one 64-bit integer (``hash``; the index is built and searched in one process). Two keys of one hash
    would only make more names candidates, each still scored exactly: results cannot change."""
    return hash(key)


def _grouped(keys: array[int], values: array[int]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """``values`` grouped by ``keys`` (in their order within a key): the distinct keys sorted, where each one's
    values start (one more: the end), and the values."""
    key_array = np.frombuffer(keys, dtype=np.int64)
    order = np.argsort(key_array, kind="stable")
    distinct, starts = np.unique(key_array[order], return_index=True)
    return distinct, np.append(starts, len(order)).astype(np.int64), np.frombuffer(values, dtype=np.int64)[order]


class NameIndex:
    """The listed names, split into parts once, with inverted indexes over their part keys.

    Candidates are the listed names sharing a key with the query: a part's sound key, its skeleton, a key one
    letter short (misspellings of parts of five letters or more), or two neighbouring parts joined. Each candidate's
    best possible score is bounded from the weights of the parts it shares, and only those that can pass are paired.

    Compact (an API process holds one): the distinct parts once, each name as a run of part numbers in one array,
    and the keys as 64-bit hashes in sorted arrays, not per-name Python objects; a name's parts and weights are
    taken out of the arrays when it is scored.
    """

    def __init__(self, names: Sequence[str], individuals: Sequence[bool] | None = None) -> None:
        kinds: Sequence[bool | None] = individuals if individuals is not None else [None] * len(names)
        numbers: dict[Part, int] = {}
        part_numbers, offsets = array("q"), array("q", [0])
        df: dict[str, int] = defaultdict(int)
        key_hashes, postings = array("q"), array("q")
        joins, join_starts = array("q"), array("q", [0])
        for index, (name, kind) in enumerate(zip(names, kinds, strict=True)):
            parts = listed_parts(name, kind)
            part_numbers.extend(numbers.setdefault(part, len(numbers)) for part in parts)
            offsets.append(len(part_numbers))
            for sound in {p.sound for p in parts}:
                df[sound] += 1
            joins.extend(join_hashes(parts, _uncached_sound_word))
            join_starts.append(len(joins))
            keys: set[tuple[str, int]] = set()
            for position, part in enumerate(parts[:_POSITION_MASK]):
                keys |= {(part.sound, position), ("~" + skeleton(part.word), position)}
            for position in range(min(len(parts), _POSITION_MASK) - 1):  # two words the query may write as one
                joined = _uncached_sound_word(parts[position].word + parts[position + 1].word)
                keys |= {(joined, position), (joined, position + 1)}
            for key, position in keys:
                key_hashes.append(_key_hash(key))
                postings.append(index << _POSITION_BITS | position)
        self._count = len(names)
        self.weights = TokenWeights(dict(df), self._count)
        self._parts = tuple(numbers)  # the distinct parts, by number
        # Python arrays and a list, not numpy: a search reads a few parts of many names, where numpy's per-call
        # cost would dominate.
        self._numbers, self._starts = part_numbers, offsets
        self._joins, self._join_starts = joins, join_starts
        self._weight_of = [self.weights(p.sound) for p in self._parts]
        required, given = array("d"), array("d")
        for index in range(self._count):
            parts, weights = self._listed(index)
            required.append(sum(w for p, w in zip(parts, weights, strict=True) if not p.optional))
            given.append(sum(w for p, w in zip(parts, weights, strict=True) if p.strict))
        self._required_array = np.frombuffer(required, dtype=np.float64)
        self._given_weight = np.frombuffer(given, dtype=np.float64)
        # The postings (name << 8 | position) grouped by key hash, with the weight of the part each names: a search
        # gathers its keys' slices and sums weights per name in numpy, not in a Python loop per posting.
        self._keys_sorted, self._key_starts, self._posting_array = _grouped(key_hashes, postings)
        names_of, positions_of = self._posting_array >> _POSITION_BITS, self._posting_array & _POSITION_MASK
        first_part = np.frombuffer(offsets, dtype=np.int64)[names_of]
        posted_parts = np.frombuffer(part_numbers, dtype=np.int64)[first_part + positions_of]
        self._posting_weights = np.array(self._weight_of, dtype=np.float64)[posted_parts]
        # One-edit neighbours over the vocabulary of part sounds (not per occurrence): key -> the sounds sharing it.
        near_keys, near_sounds = array("q"), array("q")
        for sound in {p.sound for p in self._parts}:
            for key in _one_edit_keys(sound):
                near_keys.append(_key_hash(key))
                near_sounds.append(_key_hash(sound))
        self._near_keys, self._near_starts, self._near_sounds = _grouped(near_keys, near_sounds)

    def __len__(self) -> int:
        return self._count

    def parts(self, index: int) -> tuple[Part, ...]:
        return self._listed(index)[0]

    def _listed(self, index: int) -> tuple[tuple[Part, ...], list[float]]:
        """A listed name's parts and their weights."""
        numbers = self._numbers[self._starts[index] : self._starts[index + 1]]
        return tuple(map(self._parts.__getitem__, numbers)), list(map(self._weight_of.__getitem__, numbers))

    def _side(self, index: int, parts: tuple[Part, ...], weights: list[float]) -> _Side:
        return _Side.of(parts, weights, self._joins[self._join_starts[index] : self._join_starts[index + 1]])

    def pair(self, query: str, index: int) -> Pairing:
        return _pair(self._query_side(query_parts(query)), self._side(index, *self._listed(index)), {})

    def _query_side(self, parts: tuple[Part, ...]) -> _Side:
        return _Side.of(parts, [self.weights(q.sound) for q in parts])

    def _keys(self, query: tuple[Part, ...]) -> set[int]:
        """The hashes of the keys a query reaches (``_key_hash``)."""
        keys: set[str] = set()
        near: set[str] = set()
        for part in query:
            if len(part.word) < 2 and not part.word.isdigit():
                continue
            keys |= {part.sound, "~" + skeleton(part.word)}
            near |= _one_edit_keys(part.sound)
        words = [p.word for p in query]
        keys |= {sound_word(a + b) for a, b in itertools.pairwise(words)}
        keys |= {sound_word(a + b + c) for a, b, c in zip(words, words[1:], words[2:], strict=False)}
        hashes = {_key_hash(key) for key in keys}
        for _, start, stop in self._found(self._near_keys, self._near_starts, {_key_hash(key) for key in near}):
            hashes.update(self._near_sounds[start:stop].tolist())
        return hashes

    @staticmethod
    def _found(
        sorted_keys: NDArray[np.int64], starts: NDArray[np.int64], hashes: set[int]
    ) -> list[tuple[int, int, int]]:
        """(hash, start, stop) of each of ``hashes`` that is among ``sorted_keys``."""
        if not hashes:
            return []
        wanted = np.array(sorted(hashes), dtype=np.int64)
        at = np.searchsorted(sorted_keys, wanted)
        present = at < len(sorted_keys)
        present[present] &= sorted_keys[at[present]] == wanted[present]
        at = at[present]
        return list(zip(wanted[present].tolist(), starts[at].tolist(), starts[at + 1].tolist(), strict=True))

    def _bound(
        self,
        index: int,
        listed: tuple[tuple[Part, ...], list[float]],
        positions: set[int],
        initials: frozenset[str],
        letters: frozenset[str],
    ) -> float:
        """The best score listed name ``index`` (``listed``: its parts and weights) could reach if every part sharing
        a key with the query paired fully, and every given name an initial could pair with did too: one starting
        with an initial of the query (``initials``), or a listed initial that a query word (first ``letters``) starts
        with."""
        parts, weights = listed
        earned = sum(weights[p] for p in positions)
        extra = sum(weights[p] for p in positions if parts[p].optional)
        if initials:
            for position, part in enumerate(parts):
                first, initial = part.word[0], len(part.word) == 1
                if part.strict and position not in positions and (first in initials or (initial and first in letters)):
                    earned += weights[position]
                    extra += weights[position] if part.optional else 0.0
        owed = float(self._required_array[index]) + extra
        return 100.0 * min(earned, owed) / owed if owed else 0.0

    def _candidates(self, parts: tuple[Part, ...], threshold: float, initials: bool) -> dict[int, set[int]]:
        """The listed names sharing a key with the query, each with the positions reached, leaving out (in numpy)
        those that cannot reach ``threshold`` even if every reached part (and with ``initials`` every given name)
        paired fully and nothing else were owed: ``earned / required``, an upper bound of ``_bound``."""
        found = self._found(self._keys_sorted, self._key_starts, self._keys(parts))
        spans = [(start, stop) for _, start, stop in found]
        if not spans:
            return {}
        gathered = np.concatenate([self._posting_array[start:stop] for start, stop in spans])
        reached, first = np.unique(gathered, return_index=True)  # a position reached by several keys counts once
        weights = np.concatenate([self._posting_weights[start:stop] for start, stop in spans])[first]
        names = reached >> _POSITION_BITS
        earned = np.asarray(np.bincount(names, weights=weights, minlength=self._count), dtype=np.float64)
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
            listed = self._listed(index)
            if self._bound(index, listed, positions, initials, letters) < threshold:
                continue
            pairing = _pair(side, self._side(index, *listed), similarities)
            if pairing.score >= threshold:
                found.append(NameCandidate(index, pairing.score, pairing.near_exact, pairing.why(), pairing))
        found.sort(key=lambda c: (-c.score, c.index))
        return found[:limit]


def exact_keys(names: Iterable[str]) -> set[str]:
    return {spelling_key(n) for n in names}
