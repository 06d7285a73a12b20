"""Military Lending Act covered-borrower status, behind an interface shaped like the Department of Defense's MLA
website (a query by name, date of birth and SSN or DoD ID as of a date; an answer with a certificate id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Protocol


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
    def check(self, query: MlaQuery) -> MlaStatus:
        """The borrower's covered status on ``query.as_of``. Raises KycProviderError when the service fails."""
        ...


@dataclass(frozen=True)
class CoveredPeriod:
    last_name: str
    date_of_birth: date
    ssn_or_dod_id: str
    start: date
    end: date | None = None  # active duty (plus 365 days after, per the DoD's rule) until this date


class LocalMlaStatusProvider:
    """For local runs and tests: covered periods given up front, matched on last name, date of birth and id."""

    def __init__(self, periods: Iterable[CoveredPeriod] = ()) -> None:
        self._periods = list(periods)
        self._issued = 0

    def check(self, query: MlaQuery) -> MlaStatus:
        self._issued += 1
        covered = any(
            p.last_name.casefold() == query.last_name.casefold()
            and p.date_of_birth == query.date_of_birth
            and p.ssn_or_dod_id == query.ssn_or_dod_id
            and p.start <= query.as_of
            and (p.end is None or query.as_of <= p.end)
            for p in self._periods
        )
        return MlaStatus(covered, query.as_of, f"local-mla-{query.as_of.isoformat()}-{self._issued:06d}")
