"""Which loan event a chain fact makes (pure): ``LoanOpened`` → ``loan.opened``, ``LoanRepaid`` →
``loan.repayment``, ``LoanDefaulted`` → ``loan.defaulted``, ``LoanLiquidated`` → ``loan.liquidated``,
``LoanCancelled`` → ``loan.cancelled``, ``LoanClosed`` → ``loan.closed`` (its outcome: repaid, liquidated or
cancelled), ``LoanWrittenOff`` → ``loan.written_off``.

The key names the fact for the outbox's deduplication: a loan opens, defaults, is cancelled, closes and is written
off once, so those are keyed by the event alone (also when a reorg moves the transaction to another block);
repayments and liquidations repeat, keyed by transaction and log index.

A fact that arrives after a later fact of its loan (the indexer's confirmed event of a block before one a receipt
recorded) still makes its event — it happened: a repayment is a ``loan.repayment``, a liquidation a
``loan.liquidated`` — except ``loan.defaulted`` when the loan is not in default any more (``told_late``): its
recipients already heard the loan closed, and a default after that would read as its state now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aggregator.outbox import (
    LOAN_CANCELLED,
    LOAN_CLOSED,
    LOAN_DEFAULTED,
    LOAN_LIQUIDATED,
    LOAN_OPENED,
    LOAN_REPAYMENT,
    LOAN_WRITTEN_OFF,
)
from aggregator.projection import DEFAULTED


@dataclass(frozen=True, slots=True)
class LoanEvent:
    event_type: str
    key: str
    data: dict[str, Any]


def _units(args: Mapping[str, Any], name: str) -> str:
    return str(int(args[name]))


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else str(value)


class RecordedFact(Protocol):
    """A chain fact as the ledger holds it (``aggregator.projection.Fact``, or its stored row)."""

    @property
    def event(self) -> str: ...
    @property
    def args(self) -> Mapping[str, Any]: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def log_index(self) -> int: ...
    @property
    def block_number(self) -> int: ...


def told_late(event: LoanEvent, status_now: str) -> bool:
    """Whether the loan event of a fact applied after a later fact of its loan is still told, the loan's status
    now (replayed in chain order) being ``status_now``: every event is but ``loan.defaulted`` of a loan that left
    default since (repaid, liquidated, written off). The fact stays recorded (a default counts in the borrower's
    history, ``QuotingRepository.ledger_defaults``)."""
    return event.event_type != LOAN_DEFAULTED or status_now == DEFAULTED


def fact_event(fact: RecordedFact, status_after: str) -> LoanEvent | None:
    """The loan event of one recorded chain fact (see ``loan_event``)."""
    return loan_event(
        fact.event,
        fact.args,
        tx_hash=fact.tx_hash,
        log_index=fact.log_index,
        block_number=fact.block_number,
        status_after=status_after,
    )


def loan_event(
    event: str,
    args: Mapping[str, Any],
    *,
    tx_hash: str,
    log_index: int,
    block_number: int,
    status_after: str,
) -> LoanEvent | None:
    """The loan event of one applied chain fact (``status_after``: the loan's ledger status once it is applied),
    or None for a fact that is no loan event (collateral movements, impairment, …)."""
    where = {"tx_hash": tx_hash, "block_number": block_number, "log_index": log_index}
    if event == "LoanOpened":
        return LoanEvent(
            LOAN_OPENED,
            "opened",
            where
            | {
                "principal": _units(args, "principal"),
                "origination_fee": _units(args, "originationFee"),
                "rate_bps": int(args["rateBps"]),
                "term_seconds": int(args["term"]),
                "terms_hash": _hex(args["termsHash"]),
                "collateral_amount": _units(args, "collateralAmount"),
            },
        )
    if event == "LoanRepaid":
        return LoanEvent(
            LOAN_REPAYMENT,
            f"{tx_hash}:{log_index}",
            where
            | {
                "payer": str(args["payer"]),
                "interest_paid": _units(args, "interestPaid"),
                "principal_paid": _units(args, "principalPaid"),
                "outstanding_principal": _units(args, "outstandingPrincipal"),
                "payment_ref": _hex(args["paymentRef"]),
            },
        )
    if event == "LoanDefaulted":
        return LoanEvent(
            LOAN_DEFAULTED,
            "defaulted",
            where
            | {
                "outstanding_principal": _units(args, "outstandingPrincipal"),
                "accrued_interest": _units(args, "accruedInterest"),
            },
        )
    if event == "LoanLiquidated":
        return LoanEvent(
            LOAN_LIQUIDATED,
            f"{tx_hash}:{log_index}",
            where
            | {
                "liquidator": str(args["liquidator"]),
                "debt_repaid": _units(args, "debtRepaid"),
                "collateral_seized": _units(args, "collateralSeized"),
            },
        )
    if event == "LoanCancelled":  # its lender never funded it: no debt, the collateral back with the borrower
        return LoanEvent(LOAN_CANCELLED, "cancelled", where)
    if event == "LoanClosed":
        return LoanEvent(LOAN_CLOSED, "closed", where | {"outcome": status_after})
    if event == "LoanWrittenOff":
        return LoanEvent(
            LOAN_WRITTEN_OFF,
            "written_off",
            where | {"principal": _units(args, "principal"), "interest": _units(args, "interest")},
        )
    return None
