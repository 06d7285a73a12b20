"""The accept's answer to the borrower (``aggregator.accepting``): the loan once it is recorded, flagged while its
lender has not answered the funding instruction, or ``FundingFailed`` when the lender did not fund it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aggregator.accept_saga import FUND_REFUSED, TRADITIONAL, AcceptRecord, QuoteView, funding_failure, funding_pending
from aggregator.errors import FundingFailed
from aggregator.loans import LoanRecord


@dataclass(frozen=True, slots=True)
class Accepted:
    loan_id: str
    quote_id: str
    #: the loan as the accept recorded it (in the transaction that wrote it), when this accept recorded it
    loan: LoanRecord | None = None
    #: why the loan's lender did not fund it (``fund-refused``), as the borrower is told: the accept failed
    funding_failed: str | None = None


def accepted_answer(quote: QuoteView, record: AcceptRecord, loan: LoanRecord | None = None) -> Accepted:
    """The accept's answer once its loan is recorded (``record.loan_id`` set): the loan flagged ``funding_pending``
    while its lender has not answered the funding instruction (not delivered yet: recovery sends it again)."""
    assert record.loan_id is not None
    failed = record.lender_state == FUND_REFUSED and quote.kind == TRADITIONAL
    reason = funding_failure(quote.provider_id, record.error) if failed else None
    if loan is not None:
        loan = replace(loan, funding_pending=funding_pending(quote.kind, record.step, record.lender_state))
    return Accepted(record.loan_id, quote.id, loan, reason)


def funded_or_failed(accepted: Accepted) -> Accepted:
    """The accept's answer to the borrower: its loan, or FundingFailed when the lender did not fund it."""
    if accepted.funding_failed is not None:
        raise FundingFailed(accepted.quote_id, accepted.loan_id, accepted.funding_failed)
    return accepted
