"""The labelled sample that the name-matching threshold is chosen on and measured with (docs/compliance.md).

``python -m compliance.sanctions.sample`` rebuilds ``compliance/data/sanctions/name-match-sample.csv``
deterministically (fixed seed) from the shipped SDN names: each row is ``query, listed name, label, how``.

* true matches (label 1): a listed name rewritten the way a borrower or a document would spell it: word order,
  case and punctuation, romanization variants, accents, legal-form words changed, a middle name or patronymic
  dropped, one typo;
* hard near-misses (label 0): a listed name with its most distinctive word replaced by a different real name or
  word from the list (same surname with another given name, same given names with another surname, same trade
  words with another brand), checked not to be on the list itself and not to be a spelling of the original word.

The split, the threshold choice and the rates are in ``choose_threshold`` and ``error_rates``.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz

from compliance.sanctions.lists import SHIPPED_DIR, ListedName, NameList, load_newest
from compliance.sanctions.names import LEGAL_FORMS, sound_key, spelling_key

SAMPLE_FILE = SHIPPED_DIR / "name-match-sample.csv"
SEED = 20_260_822


@dataclass(frozen=True)
class LabelledPair:
    query: str
    listed: str
    is_match: bool
    how: str


_ROMANIZATIONS = (
    ("OU", "U"),
    ("U", "OU"),
    ("KH", "H"),
    ("Y", "I"),
    ("I", "Y"),
    ("EI", "EY"),
    ("PH", "F"),
    ("J", "DJ"),
    ("ZH", "J"),
    ("EE", "I"),
    ("MM", "M"),
    ("SS", "S"),
    ("O", "U"),
    ("E", "I"),
    ("Q", "K"),
    ("W", "V"),
    ("CH", "TCH"),
)
_ACCENTS = {"A": "Á", "E": "É", "I": "Í", "O": "Ö", "U": "Ü", "C": "Ç", "N": "Ñ", "S": "Ş"}
_FORMS = ("LLC", "LTD", "LIMITED", "CO.", "INC.", "JSC", "GMBH", "S.A.", "COMPANY LIMITED", "OOO")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", name) if w]


def _as_written(listed: ListedName) -> list[str]:
    """An individual "SURNAME, Given Middle" as "Given Middle Surname"; an entity as its words."""
    if listed.sdn_type == "individual" and "," in listed.name:
        surname, given = listed.name.split(",", 1)
        return _words(given) + _words(surname.title())
    return _words(listed.name)


def _romanize(rng: random.Random, words: list[str]) -> list[str] | None:
    options = [(i, old, new) for i, w in enumerate(words) for old, new in _ROMANIZATIONS if old in w.upper()]
    if not options:
        return None
    i, old, new = rng.choice(options)
    out = list(words)
    out[i] = out[i].upper().replace(old, new, 1)
    return out


def _positive(rng: random.Random, listed: ListedName) -> tuple[str, str] | None:
    words = _as_written(listed)
    how = rng.choice(["reorder", "punctuation", "romanize", "accents", "legal-form", "drop-middle", "typo", "mixed"])
    if how == "reorder":
        out = list(reversed(words))
    elif how == "punctuation":
        out = [re.sub(r"[-.]", rng.choice([" ", ""]), w) for w in words]
        out = [w.lower() if rng.random() < 0.5 else w for w in out]
        return (", ".join(out[:1]) + " " + " ".join(out[1:])).strip(), how
    elif how == "romanize":
        found = _romanize(rng, words)
        if found is None:
            return None
        out = found
    elif how == "accents":
        out = ["".join(_ACCENTS.get(ch, ch) if rng.random() < 0.3 else ch for ch in w) for w in words]
    elif how == "legal-form":
        core = [w for w in words if spelling_key(w) not in LEGAL_FORMS]
        if listed.sdn_type == "individual" or not core:
            return None
        out = [*core, rng.choice(_FORMS)]
    elif how == "drop-middle":
        if listed.sdn_type != "individual" or len(words) < 3:
            return None
        out = [words[0], words[-1]]
    elif how == "typo":
        long_words = [i for i, w in enumerate(words) if len(w) >= 6 and spelling_key(w) not in LEGAL_FORMS]
        if not long_words:
            return None
        i = rng.choice(long_words)
        j = rng.randrange(1, len(words[i]) - 1)
        out = list(words)
        out[i] = words[i][:j] + words[i][j + 1] + words[i][j] + words[i][j + 2 :]  # two letters swapped
    else:
        found = _romanize(rng, list(reversed(words)))
        if found is None:
            return None
        out = [w.title() for w in found]
    return " ".join(out), how


def _distinct(a: str, b: str) -> bool:
    return fuzz.ratio(sound_key(a), sound_key(b)) < 60


def _negative(
    rng: random.Random, listed: ListedName, pool: Sequence[ListedName], on_list: set[str]
) -> tuple[str, str] | None:
    words = _as_written(listed)
    distinctive = [i for i, w in enumerate(words) if spelling_key(w) not in LEGAL_FORMS and len(w) >= 3]
    if len(words) < 2 or not distinctive:
        return None
    i = max(distinctive, key=lambda k: len(words[k])) if rng.random() < 0.5 else rng.choice(distinctive)
    donor = rng.choice([p for p in pool if p.sdn_type == listed.sdn_type])
    donor_words = [w for w in _as_written(donor) if spelling_key(w) not in LEGAL_FORMS]
    if not donor_words:
        return None
    replacement = max(donor_words, key=len)
    if not _distinct(words[i], replacement) or len(replacement) < 3:
        return None
    out = list(words)
    out[i] = replacement.title() if words[i][:1].isupper() and not words[i].isupper() else replacement.upper()
    query = " ".join(out)
    if spelling_key(query) in on_list:
        return None
    how = "other-given-name" if listed.sdn_type == "individual" and i < len(words) - 1 else "other-distinctive-word"
    return query, how


def build_sample(names: NameList, size: int = 400, seed: int = SEED) -> list[LabelledPair]:
    """``size`` labelled pairs, half true matches and half hard near-misses, reproducible from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
    pool = [n for n in names.names if n.alias_of is None and len(spelling_key(n.name)) >= 8]
    on_list = {spelling_key(n.name) for n in names.names}
    pairs: list[LabelledPair] = []
    makers: tuple[tuple[bool, Callable[[ListedName], tuple[str, str] | None]], ...] = (
        (True, lambda listed: _positive(rng, listed)),
        (False, lambda listed: _negative(rng, listed, pool, on_list)),
    )
    for is_match, make in makers:
        made = 0
        while made < size // 2:
            listed = rng.choice(pool)
            result = make(listed)
            if result is None:
                continue
            pairs.append(LabelledPair(result[0], listed.name, is_match, result[1]))
            made += 1
    return pairs


def split(pairs: Sequence[LabelledPair], seed: int = SEED) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """Two halves, each with half of the matches and half of the near-misses: (selection, held-out)."""
    rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
    selection: list[LabelledPair] = []
    held_out: list[LabelledPair] = []
    for label in (True, False):
        group = [p for p in pairs if p.is_match is label]
        rng.shuffle(group)
        selection += group[: len(group) // 2]
        held_out += group[len(group) // 2 :]
    return selection, held_out


def error_rates(scores: Sequence[tuple[float, bool]], threshold: float) -> tuple[float, float]:
    """(false-negative rate over the true matches, false-positive rate over the near-misses)."""
    matches = [s for s, label in scores if label]
    misses = [s for s, label in scores if not label]
    fn = sum(1 for s in matches if s < threshold) / len(matches)
    fp = sum(1 for s in misses if s >= threshold) / len(misses)
    return fn, fp


def choose_threshold(scores: Sequence[tuple[float, bool]], max_fn: float = 0.01) -> float:
    """The threshold with the fewest false positives among those keeping false negatives within ``max_fn`` (half
    the 2% ceiling, for margin on unseen names), taken at a whole score, the highest such."""
    best: tuple[float, float] | None = None
    for threshold in range(50, 101):
        fn, fp = error_rates(scores, threshold)
        if fn <= max_fn and (best is None or fp <= best[1]):
            best = (float(threshold), fp)
    if best is None:
        raise ValueError(f"no threshold keeps false negatives within {max_fn:.0%}")
    return best[0]


def write_sample(pairs: Sequence[LabelledPair], path: Path = SAMPLE_FILE) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["query", "listed", "label", "how"])
        for p in pairs:
            writer.writerow([p.query, p.listed, int(p.is_match), p.how])


def read_sample(path: Path = SAMPLE_FILE) -> list[LabelledPair]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [LabelledPair(r["query"], r["listed"], r["label"] == "1", r["how"]) for r in csv.DictReader(handle)]


if __name__ == "__main__":
    _, name_list = load_newest()
    write_sample(build_sample(name_list))
    print(f"wrote {SAMPLE_FILE}")
