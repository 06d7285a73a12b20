"""Military Lending Act covered-borrower status, behind an interface shaped like the Department of Defense's MLA
website (a query by name, date of birth and SSN or DoD ID as of a date; an answer with a certificate id), queried
by an operator account (``compliance.identity_http.HttpMlaStatusProvider``; ``compliance.sim`` simulates it). The
status is cached per borrower, day and identity (``MlaStatusCache``, bounded) so the quote path asks at most once a
day for one identity.

The service matches the last name as its records spell it, while the KYC provider accepts an identity whose name is
the document's with accents, case, spacing and punctuation aside (``compliance.kyc.same_name``): a servicemember
whose identity says "Höpper", or "Hopper " with a blank, was answered "not covered". ``mla_queries`` asks in each
spelling the service may hold — the name normalized (``normalize_name``) and its Latin spelling, accents dropped —
and the borrower is covered when any answer says so (the cap never harms a borrower)."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from compliance.sanctions.spelling import drop_invisible, latin_spelling


@dataclass(frozen=True)
class MlaQuery:
    last_name: str
    first_name: str
    date_of_birth: date
    ssn_or_dod_id: str  # PII: never logged, never put in a decision record unencrypted
    as_of: date


@dataclass(frozen=True)
class MlaStatus:
    covered: bool
    as_of: date
    certificate_id: str


class MlaStatusProvider(Protocol):
    async def check(self, query: MlaQuery, now: datetime) -> MlaStatus:
        """The borrower's covered status on ``query.as_of``. Raises KycProviderError when the service fails."""
        ...


@dataclass(frozen=True)
class CoveredPeriod:
    last_name: str
    date_of_birth: date
    ssn_or_dod_id: str
    start: date
    end: date | None = None  # active duty (plus 365 days after, per the DoD's rule) until this date


def normalize_name(name: str) -> str:
    """A name as the platform keeps and asks about it: NFKC, invisible format characters dropped, blanks around it
    dropped and runs of blanks inside it one space ("Hopper ", "Hop\u00adper", "Ｈｏｐｐｅｒ" → "Hopper")."""
    return " ".join(unicodedata.normalize("NFKC", drop_invisible(name)).split())


def mla_queries(
    last_name: str, first_name: str, date_of_birth: date, ssn_or_dod_id: str, as_of: date
) -> tuple[MlaQuery, ...]:
    """The queries a borrower's covered status takes: the names normalized, and their Latin spelling (accents
    dropped, ß/Ø/Ł… spelled out) when it differs — the service holds one of them, and a borrower either answers
    covered for is covered."""
    names = [(normalize_name(last_name), normalize_name(first_name))]
    names.append((latin_spelling(names[0][0]), latin_spelling(names[0][1])))
    return tuple(MlaQuery(last, first, date_of_birth, ssn_or_dod_id, as_of) for last, first in dict.fromkeys(names))


def covered_on(periods: Iterable[CoveredPeriod], query: MlaQuery) -> bool:
    """The simulated service's rule: a period matching last name, date of birth and id covers ``query.as_of``. The
    last name is matched case aside only — as strictly as the DoD's service, which knows nothing of the spellings
    the KYC provider accepted (the platform asks in each: ``mla_queries``)."""
    return any(
        p.last_name.casefold() == query.last_name.casefold()
        and p.date_of_birth == query.date_of_birth
        and p.ssn_or_dod_id == query.ssn_or_dod_id
        and p.start <= query.as_of
        and (p.end is None or query.as_of <= p.end)
        for p in periods
    )


class LocalMlaStatusProvider:
    """The in-process fake for unit tests: covered periods given up front (``covered_on``)."""

    def __init__(self, periods: Iterable[CoveredPeriod] = ()) -> None:
        self._periods = list(periods)
        self._issued = 0

    async def check(self, query: MlaQuery, now: datetime) -> MlaStatus:
        self._issued += 1
        covered = covered_on(self._periods, query)
        return MlaStatus(covered, query.as_of, f"local-mla-{query.as_of.isoformat()}-{self._issued:06d}")


def identity_digest(query: MlaQuery) -> bytes:
    """A digest of the identity ``query`` asks about (names, date of birth, SSN or DoD ID): what a cached status is
    for, without keeping the identifier itself as a key."""
    fields = (query.last_name, query.first_name, query.date_of_birth.isoformat(), query.ssn_or_dod_id)
    return hashlib.sha256("\x1f".join(fields).encode()).digest()


class MlaStatusCache:
    """The status per borrower, day and identity asked about, the newest ``capacity`` kept (least recently used
    dropped first): one query per borrower a day on the quote path, and another as soon as the identity changes (a
    servicemember who corrects a mistyped SSN with a new ``POST /me/kyc`` is asked about again, not left "not
    covered" for the rest of the day). ``forget`` drops a borrower (erasure, a new identity)."""

    def __init__(self, provider: MlaStatusProvider, capacity: int = 10_000) -> None:
        self._provider = provider
        self._capacity = capacity
        self._statuses: OrderedDict[tuple[str, date, bytes], MlaStatus] = OrderedDict()

    def __len__(self) -> int:
        return len(self._statuses)

    async def status(self, borrower_id: str, query: MlaQuery, now: datetime) -> MlaStatus:
        key = (borrower_id, query.as_of, identity_digest(query))
        cached = self._statuses.get(key)
        if cached is not None:
            self._statuses.move_to_end(key)
            return cached
        status = await self._provider.check(query, now)
        self._statuses[key] = status
        while len(self._statuses) > self._capacity:
            self._statuses.popitem(last=False)
        return status

    def forget(self, borrower_id: str) -> None:
        for key in [key for key in self._statuses if key[0] == borrower_id]:
            del self._statuses[key]
