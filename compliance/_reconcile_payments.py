"""Reconciliation of the lenders' off-chain payments (by ``paymentRef``) with the chain's ``LoanRepaid``."""

from __future__ import annotations

from compliance._reconcile_values import Category, ChainResult, ChainScope, Fact, Records, in_scope, item

ZERO_REF = "0x" + "00" * 32


def match_payments(result: ChainResult, scope: ChainScope, facts: list[Fact], records: Records) -> None:
    """Each off-chain ``LoanRepaid`` (a ``paymentRef``) has the lender's payment record with that reference, for that
    loan and amount; each payment the platform recorded has its ``LoanRepaid`` on-chain. A ``LoanRepaid`` that closed
    the loan may apply another amount, never more than was sent: the contract applies at most what is owed (a larger
    payment), and the payment completing the disclosed total of payments is sent as what the loan owed on-chain
    (``recorded_amount``: ``aggregator.offchain_payments``)."""
    payments = {(p.reference.lower(), p.onchain_loan_id): p for p in records.payments if p.status != "refused"}
    by_reference = {reference: p for (reference, _), p in payments.items()}
    seen: set[tuple[str, int]] = set()
    for fact in facts:
        if fact.event != "LoanRepaid" or fact.contract != "CreditAggregator":
            continue
        reference = fact.hex("paymentRef")
        if reference == ZERO_REF:
            continue
        number, subject = fact.uint("loanId"), f"loan #{fact.uint('loanId')}"
        payment = payments.get((reference, number)) or by_reference.get(reference)
        if payment is None:
            detail = f"an off-chain repayment with reference {reference}: no lender payment record has it"
            result.add(item(scope, Category.ONCHAIN_NOT_RECORDED, subject, "payment record", detail, fact))
            continue
        # the contract takes a paymentRef again: one lender report, one credit
        if (reference, payment.onchain_loan_id) in seen:
            detail = f"an off-chain repayment with reference {reference} recorded again: the lender reported it once"
            result.add(item(scope, Category.ONCHAIN_NOT_RECORDED, subject, "payment record", detail, fact))
            continue
        seen.add((reference, payment.onchain_loan_id))
        applied = fact.uint("interestPaid") + fact.uint("principalPaid")
        wrong = []
        if payment.onchain_loan_id != number:
            wrong.append(f"reported for loan #{payment.onchain_loan_id}")
        closed = fact.uint("outstandingPrincipal") == 0
        if applied != payment.amount and not (closed and applied <= payment.sent_amount):
            sent = "" if payment.recorded_amount is None else f", sent {payment.recorded_amount}"
            wrong.append(f"amount: reported {payment.amount}{sent}, recorded on-chain {applied}")
        if wrong:
            detail = "; ".join(wrong)
            result.add(item(scope, Category.AMOUNT_MISMATCH, subject, "payment record", detail, fact, payment.loan_id))
        else:
            result.matched()
    for key, payment in payments.items():
        judged = in_scope(scope, payment.block_number) or (payment.block_number is None and scope.full)
        if key in seen or not judged:
            continue
        sent = f"recorded in {payment.tx_hash} (block {payment.block_number})" if payment.tx_hash else "not sent"
        result.add(
            item(
                scope,
                Category.RECORDED_NOT_ONCHAIN,
                f"loan #{payment.onchain_loan_id}",
                "payment record",
                f"the lender's payment {payment.reference} of {payment.amount}, {sent}: the chain has no LoanRepaid "
                "with its reference (never mined, or reorged away)",
                None,
                payment.loan_id,
            )
        )
