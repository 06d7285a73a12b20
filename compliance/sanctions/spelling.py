"""How a name is spelt for sanctions matching: ASCII upper case, punctuation as spaces, dotted abbreviations such as
``S.A.``/``S.R.L.`` joined before a name is split, legal forms dropped (``spelling_key``); each word's *sound key*
with the letter groups that romanizations alternate between folded together (``sound_word``), and its *skeleton*
without inner vowels (``skeleton``). ``compliance.sanctions.names`` pairs names through these keys. Letters with no
Latin spelling (Cyrillic, Arabic, CJK, …) do not survive into the keys: ``unspelled_letters`` finds them. Invisible
format characters (soft hyphen, zero-width space and joiners, word joiner, bidi marks…: ``drop_invisible``) are
deleted first: they join the letters around them, never split a word ("Ma\u00addu\u00adro" is MADURO).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz.distance import OSA

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
# Titles, honorifics and ranks the SDN list writes before an individual's given names (AL ZAWAHIRI, Dr. Ayman;
# YASSIN, Sheik Ahmed Ismail; NOORZAI, Mullah Ahmed Shah), which a borrower need not write. Left out: words as often
# given names (AMIR, HAFIZ, SULTAN, KHALIFA, PRINCE, IMAM), and SEYED/SAYYID, which Iranian documents write as part
# of the name (a borrower writes "Seyed Vahabzadeh Moghadam" for VAHABZADEH MOGHADAM, Seyed Mohsen).
TITLES = frozenset(
    """DR DOCTOR PROF PROFESSOR SHAYKH SHAIKH SHEIKH SHEIK MULLAH MULLA MAULAWI MAWLAWI MAULVI MOULAVI MAWLAVI
    MAULANA MAWLANA QARI MUFTI AYATOLLAH HAJI HAJJI HAJ HAJJ ALHAJ ALHAJI
    GENERAL COLONEL MAJOR CAPTAIN BRIGADIER ADMIRAL ENGINEER""".split()  # noqa: SIM905 -- a word list reads better as words
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
WORD_SEPARATORS = re.compile(r"[^A-Z0-9]+")
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


# Not a format character (Cf) but as invisible: it only keeps combining marks apart
_GRAPHEME_JOINER = "\u034f"


def drop_invisible(text: str) -> str:
    """``text`` without its invisible format characters (Unicode category Cf: U+00AD soft hyphen, U+200B zero-width
    space, U+200C/U+200D zero-width (non-)joiner, U+2060 word joiner, U+FEFF, bidi marks…, and U+034F combining
    grapheme joiner), which a reader does not see and which would otherwise split a word in two."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if ch != _GRAPHEME_JOINER and unicodedata.category(ch) != "Cf")


def latin_spelling(name: str) -> str:
    """``name`` in Latin letters where it has a spelling in them: invisible characters dropped, accents dropped, and
    ß, Æ, Ø, Ł… spelled out ("Höpper" → "Hopper", "Łukasz" → "Lukasz"); case and punctuation kept, other scripts
    kept as they are (there is no transliteration)."""
    text = drop_invisible(name).translate(_SPELLED)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text


def ascii_upper(name: str) -> str:
    text = latin_spelling(name).upper().replace("&", " AND ")
    return _DOTTED.sub(lambda m: m.group(0).replace(".", "") + " ", text)


def unspelled_letters(name: str) -> str:
    """The letters of ``name`` that have no Latin spelling here and so do not survive into ``spelling_key`` (Cyrillic,
    Arabic, CJK, Greek, …: ``ascii_upper`` only drops accents; there is no transliteration). Empty when the whole name
    is spelt: a name with such letters is screened only on what survived and must not be taken for clear."""
    return "".join(ch for ch in ascii_upper(name) if ch.isalpha() and not ch.isascii())


def _words(name: str) -> list[str]:
    return [w for w in WORD_SEPARATORS.split(ascii_upper(name)) if w]


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


def drop_legal_forms(words: list[str]) -> list[str]:
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
    return " ".join(drop_legal_forms(_words(name)))


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
