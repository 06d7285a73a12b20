"""What servicing reads and writes, as plain values: each chain's open loans (the keeper's and the default job's
worklist), the past-due buckets already announced per loan in its current late period (``loan.past_due`` goes out
once per bucket entered; forgotten when the loan is current again, so a later late period is announced too), and
the closed loans whose collateral still waits for ``claimCollateral`` (the keeper's claim sweep).

``ServicingStore`` opens a unit of work holding the servicing repository, the outbox (a bucket's notice and its
``loan.past_due`` commit together) and the lease's fence: ``store.servicing.SqlServicingStore`` on the database,
``InMemoryServicingStore`` here for unit tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aggregator.outbox import OutboxStore
from aggregator.outbox_memory import InMemoryLeases, InMemoryOutbox
from aggregator.servicing.payment_times import RecordedRepayment
from store.leases import Lease, LeaseStore


@dataclass(frozen=True, slots=True)
class OpenLoan:
    """A loan the ledger shows active or in default on one chain."""

    id: str
    loan_ref: int  # the CreditAggregator's loan id
    status: str
    pool: str | None
    provider_id: str | None
    asset_address: str | None
    collateral_asset: str | None
    outstanding_principal: int
    repaid: int = 0  # all repaid so far, interest and principal (base units): what its installments are paid by
    #: the disclosure of the loan's quote (its installment schedule); None for a loan opened from an offer not ours
    disclosure: dict[str, Any] | None = None
    #: its lender refused or reported failed the funding (the accept's ``fund-refused``): open on-chain, its
    #: collateral locked, and the borrower never paid out
    unfunded: bool = False
    #: its lender has not answered the funding instruction yet (``accept_saga.funding_pending``: not delivered, sent
    #: again by recovery): the borrower may not have been paid out
    funding_pending: bool = False
    #: the lender's own reference of the offer (``providerRef``), asked about before an unfunded loan is cancelled
    provider_ref: str | None = None
    #: why its ledger row cannot be read (a value its column's type cannot read back: ``store.unreadable``), or None;
    #: only ``id`` (and ``loan_ref`` when that column reads, else 0) is known of such a loan, and servicing skips it
    unreadable: str | None = None


#: why servicing leaves an unfunded loan alone: neither past due nor in default nor liquidated (its collateral would go
#: to the lender that never paid the borrower); the default job cancels it on-chain instead (``cancelUnfunded``)
UNFUNDED = (
    "its lender never funded it (fund-refused): not serviced; the default job cancels it on-chain (cancelUnfunded), "
    "releasing its collateral to the borrower"
)


#: why servicing leaves a loan whose funding is not confirmed yet alone, as an unfunded one; the default job holds
#: its liquidation (released once its lender confirms the funding) and cancels nothing: recovery still instructs it
FUNDING_PENDING = (
    "its lender has not confirmed funding it (the funding instruction not delivered yet): not serviced; its "
    "liquidation held until it is funded, or it becomes unfunded past the funding window"
)


def left_alone(loan: OpenLoan) -> str | None:
    """Why servicing leaves ``loan`` alone (``UNFUNDED``, ``FUNDING_PENDING``, its row unreadable), or None: it is
    serviced."""
    if loan.unreadable is not None:
        return f"its ledger row cannot be read: {loan.unreadable}"
    if loan.unfunded:
        return UNFUNDED
    return FUNDING_PENDING if loan.funding_pending else None


def readable(loans: Sequence[OpenLoan]) -> tuple[list[OpenLoan], list[OpenLoan]]:
    """``loans`` split into those whose ledger rows read and those that cannot be read (``OpenLoan.unreadable``):
    servicing skips the latter, names each once and counts them (``unserviceable``), and goes on with the others."""
    return [loan for loan in loans if loan.unreadable is None], [loan for loan in loans if loan.unreadable is not None]


def serviced(loans: Sequence[OpenLoan]) -> tuple[list[OpenLoan], list[OpenLoan]]:
    """``loans`` split into those servicing acts on and those it leaves alone: unfunded, or their funding pending
    (``left_alone``)."""
    return [loan for loan in loans if left_alone(loan) is None], [loan for loan in loans if left_alone(loan)]


@dataclass(frozen=True, slots=True)
class UnclaimedCollateral:
    """A ``CollateralClaimable`` fact with no ``CollateralRemoved`` after it for the same loan: the close could not
    push the collateral to the borrower, and nobody has claimed it since."""

    loan_ref: int
    borrower: str
    asset: str
    amount: int
    tx_hash: str  # the close that left it claimable
    block_number: int


class ServicingRepository(Protocol):
    """Servicing's reads and writes in the caller's transaction; never commits."""

    def open_loans(self, chain_id: int, aggregator: str) -> list[OpenLoan]:
        """The chain's loans the ledger shows active or in default, by on-chain id."""
        ...

    def announced(self, loan_id: str) -> set[str]:
        """The past-due buckets the loan entered and was announced in, in its current late period."""
        ...

    def announce(self, loan_id: str, bucket: str, days_past_due: int, as_of: datetime) -> bool:
        """Record that ``loan_id`` entered ``bucket``; False when it was recorded before (by this or another
        process), so the caller writes its event only once."""
        ...

    def clear(self, loan_id: str) -> None:
        """Forget the buckets ``loan_id`` was announced in: it is current again, its late period over, and the next
        one is announced afresh (``loan.past_due`` keyed by the period's first due date, so not written twice)."""
        ...

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        """The repayments the ledger recorded of these loans, in chain order, by loan id (one query)."""
        ...

    def unclaimed_collateral(self, chain_id: int, manager: str) -> list[UnclaimedCollateral]:
        """The CollateralManager ``manager``'s ``CollateralClaimable`` facts not followed (in chain order) by a
        ``CollateralRemoved`` of the same loan, oldest first."""
        ...

    def held_loans(self, chain_id: int, manager: str) -> set[int]:
        """The loans (on-chain ids) whose liquidation the default job held on the CollateralManager ``manager`` — a
        ``holdLiquidation`` attempt sent, not barred, refused, reverted nor dropped — and nobody has released since
        (no ``releaseLiquidationHold`` attempt in flight or confirmed: one refused, dropped or reverted released
        nothing)."""
        ...


class ServicingUnitOfWork(Protocol):
    @property
    def servicing(self) -> ServicingRepository: ...

    @property
    def outbox(self) -> OutboxStore: ...

    def fence(self, lease: Lease) -> None:
        """Raise ``LeaseLost`` unless ``lease`` still holds, checked in this transaction."""
        ...

    def commit(self) -> None: ...


class ServicingStore(Protocol):
    """Opens servicing's units of work (leaving one without ``commit`` rolls back) and holds the jobs' leases."""

    @property
    def leases(self) -> LeaseStore: ...

    def unit_of_work(self) -> AbstractContextManager[ServicingUnitOfWork]: ...


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class InMemoryServicing:
    loans: dict[int, list[OpenLoan]] = field(default_factory=dict)  # chain id → its open loans
    notices: dict[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)  # (loan, bucket) → dpd, as of
    unclaimed: dict[int, list[UnclaimedCollateral]] = field(default_factory=dict)  # chain id → claimable
    paid_in: dict[str, list[RecordedRepayment]] = field(default_factory=dict)  # loan id → its repayments
    held: dict[int, set[int]] = field(default_factory=dict)  # chain id → loans whose liquidation is held

    def open_loans(self, chain_id: int, aggregator: str) -> list[OpenLoan]:
        return sorted(self.loans.get(chain_id, []), key=lambda loan: loan.loan_ref)

    def announced(self, loan_id: str) -> set[str]:
        return {bucket for loan, bucket in self.notices if loan == loan_id}

    def announce(self, loan_id: str, bucket: str, days_past_due: int, as_of: datetime) -> bool:
        if (loan_id, bucket) in self.notices:
            return False
        self.notices[(loan_id, bucket)] = (days_past_due, as_of)
        return True

    def clear(self, loan_id: str) -> None:
        for key in [key for key in self.notices if key[0] == loan_id]:
            del self.notices[key]

    def repayments(self, loan_ids: Sequence[str]) -> dict[str, list[RecordedRepayment]]:
        return {loan_id: list(self.paid_in.get(loan_id, [])) for loan_id in loan_ids}

    def unclaimed_collateral(self, chain_id: int, manager: str) -> list[UnclaimedCollateral]:
        return list(self.unclaimed.get(chain_id, []))

    def held_loans(self, chain_id: int, manager: str) -> set[int]:
        return set(self.held.get(chain_id, set()))


@dataclass
class InMemoryServicingUnitOfWork:
    servicing: InMemoryServicing
    outbox: InMemoryOutbox
    leases: InMemoryLeases
    commits: int = 0

    def fence(self, lease: Lease) -> None:
        self.leases.check(lease)

    def commit(self) -> None:
        self.commits += 1


class InMemoryServicingStore:
    """``ServicingStore`` over dictionaries (writes take effect at once: no rollback)."""

    def __init__(
        self,
        loans: Sequence[tuple[int, OpenLoan]] = (),
        outbox: InMemoryOutbox | None = None,
        leases: InMemoryLeases | None = None,
    ) -> None:
        self.servicing = InMemoryServicing()
        for chain_id, loan in loans:
            self.servicing.loans.setdefault(chain_id, []).append(loan)
        self.outbox = outbox or InMemoryOutbox()
        self.leases = leases or InMemoryLeases()

    @contextmanager
    def unit_of_work(self) -> Iterator[InMemoryServicingUnitOfWork]:
        yield InMemoryServicingUnitOfWork(self.servicing, self.outbox, self.leases)
