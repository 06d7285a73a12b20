"""Loans a servicing job cannot act on because of the loan itself — its ledger row does not read (a value written
around the application), or the chain answers nothing usable for it (its asset has no contract) — skipped so that the
job goes on with every other loan of the chain.

Each such loan is said once, as an error naming the loan and what is wrong (again only when what is wrong changes, or
once it was fine in between), not every round; the gauge ``creditmesh_servicing_unserviceable_loans`` holds how many
a job skipped in its last round, by chain and job, and the counter ``creditmesh_servicing_unserviceable_found`` counts
each one found. Before (fixed 2026-11-29) one such loan failed every round of its chain's keeper (no loan of the chain
could be liquidated meanwhile), or crash-looped the keeper and the default job."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge

UNSERVICEABLE = Gauge(
    "creditmesh_servicing_unserviceable_loans",
    "Loans a servicing job skipped in its last round because it cannot read or price them, by chain id and job",
    ["chain", "job"],
)
FOUND = Counter(
    "creditmesh_servicing_unserviceable_found",
    "Loans a servicing job found it cannot read or price (each counted once until it is fine again), by chain id "
    "and job",
    ["chain", "job"],
)


class Unserviceable:
    """One job's loans skipped for themselves, on one chain: each said once, and counted."""

    def __init__(self, log: logging.Logger, job: str, chain_id: int) -> None:
        self._log, self._job, self._chain_id = log, job, chain_id
        self._said: dict[str, str] = {}  # loan → what was said wrong with it
        self._now: set[str] = set()

    def new_round(self) -> None:
        self._now = set()

    def skip(self, loan: str, reason: str) -> None:
        """Note that ``loan`` (its id, as an operator finds it) is skipped this round for ``reason``; said when new."""
        self._now.add(loan)
        if self._said.get(loan) == reason:
            return
        if loan not in self._said:
            FOUND.labels(str(self._chain_id), self._job).inc()
        self._said[loan] = reason
        self._log.error("%s on chain %s: loan %s skipped: %s", self._job, self._chain_id, loan, reason)

    def end_round(self) -> None:
        """Forget the loans that were fine this round (said again if they break again), and set the gauge."""
        self._said = {loan: reason for loan, reason in self._said.items() if loan in self._now}
        UNSERVICEABLE.labels(str(self._chain_id), self._job).set(len(self._now))
