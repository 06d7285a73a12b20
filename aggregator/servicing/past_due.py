"""``loan.past_due`` from the default job's round (``aggregator.servicing.defaults``): each bucket a loan entered in its
late period recorded and announced once, in the round's transaction; a loan found current has its notices forgotten."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aggregator import outbox
from aggregator.outbox import OutboxStore
from aggregator.servicing.delinquency import Bucket, Payment, disclosed_schedule, entered, judged
from aggregator.servicing.repository import OpenLoan, ServicingRepository

if TYPE_CHECKING:
    from aggregator.servicing.defaults import DefaultReport

PastDueSink = Callable[[OutboxStore, str, dict[str, Any]], None]
"""Writes ``loan.past_due`` for a loan (its ledger id) to the outbox in the caller's transaction."""


def write_past_due(events: OutboxStore, loan_id: str, payload: dict[str, Any]) -> None:
    """``loan.past_due`` to the outbox, once per loan, late period and bucket: the event's key is the bucket and the
    due date the period's days are counted from (``since``), so a notice written again is the same event."""
    loan = events.loan(loan_id)
    if loan is not None:
        key = str(payload["bucket"]) if payload.get("since") is None else f"{payload['bucket']}@{payload['since']}"
        outbox.write(events, loan, event_type=outbox.LOAN_PAST_DUE, payload=payload, key=key)


@dataclass(frozen=True, slots=True)
class OnChainLoan:
    """``getLoan``'s fields this job needs."""

    maturity: int
    status: int
    outstanding_principal: int


def announce_past_due(
    servicing: ServicingRepository,
    events: OutboxStore,
    loans: Sequence[OpenLoan],
    onchain: dict[int, OnChainLoan],
    now: int,
    report: DefaultReport,
    on_past_due: PastDueSink = write_past_due,
    payments: Mapping[str, Sequence[Payment]] | None = None,
) -> None:
    """Each loan's days past due at the block time ``now`` as ``delinquency.judged`` judges it (by its disclosed due
    dates, or by maturity without them; current when paid as disclosed, by the times of its ``payments``, by loan id);
    every bucket it entered in its late period that was not announced yet is recorded and announced through
    ``on_past_due``, once. A loan found current has its late period's buckets forgotten (``clear``): a borrower who
    caught up and fell behind again is told of the new late period from its first bucket, not only from 30 days."""
    as_of = datetime.fromtimestamp(now, UTC)
    for loan in loans:
        state = onchain[loan.loan_ref]
        owed = state.outstanding_principal > 0
        schedule, dated_payments = disclosed_schedule(loan.disclosure), (payments or {}).get(loan.id)
        found = judged(state.maturity, now, owed, schedule, loan.repaid, dated_payments)
        if found.paid_as_disclosed:
            report.paid_as_disclosed[loan.loan_ref] = state.outstanding_principal
        report.buckets[loan.loan_ref] = found.bucket
        known = servicing.announced(loan.id)
        if found.bucket is Bucket.CURRENT:
            if known:
                servicing.clear(loan.id)
            continue
        for bucket in entered(found.bucket):
            if bucket.value in known or not servicing.announce(loan.id, bucket.value, found.days_past_due, as_of):
                continue
            report.announced.append((loan.loan_ref, bucket))
            payload = {
                "bucket": bucket.value,
                "days_past_due": found.days_past_due,
                "maturity": _rfc3339(datetime.fromtimestamp(state.maturity, UTC)),
                "since": None if found.since is None else found.since.isoformat(),
                "as_of": _rfc3339(as_of),
            }
            on_past_due(events, loan.id, payload)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
