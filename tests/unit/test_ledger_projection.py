"""The ledger's projection on the in-memory fake: chain facts move a loan's status, figures and entries; a fact
recorded again changes nothing and publishes nothing; a loan closed in its liquidation's transaction is
``liquidated``; a reorg's range deletes the facts of removed blocks and rebuilds (or drops) the loans they touched."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from aggregator.ledger import SOURCE_RECEIPT, LedgerChain, loan_id_for, record_batch, record_events
from aggregator.ledger_memory import InMemoryLedger
from aggregator.projection import (
    ACTIVE,
    CANCELLED,
    LIQUIDATED,
    REPAID,
    CollateralEntry,
    LiquidationEntry,
    QuoteLink,
    RepaymentEntry,
)
from chain.events import ChainEvent, EventBatch

pytestmark = pytest.mark.unit

AGGREGATOR = "0x" + "A1" * 20
MANAGER = "0x" + "C1" * 20
USDC = "0x" + "05" * 20
WETH = "0x" + "0e" * 20
BORROWER = "0x" + "b0" * 20
CHAIN = LedgerChain("ethereum-local", 31337, AGGREGATOR, MANAGER, {USDC: "USDC"})
NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
PRINCIPAL = 1_000_000_000


class Loan:
    """Events of loan ``ref``: each in its own block and transaction unless told otherwise."""

    def __init__(self, ref: int = 1) -> None:
        self.ref, self.block = ref, 100
        self.digest = "0x" + uuid.uuid4().hex * 2

    @property
    def id(self) -> str:
        return loan_id_for(CHAIN.chain_id, AGGREGATOR, self.digest)

    def event(
        self, name: str, *, address: str = AGGREGATOR, tx: str | None = None, block: int | None = None, **args: Any
    ) -> ChainEvent:
        if block is None:
            self.block += 1
        number = self.block if block is None else block
        return ChainEvent(
            chain_id=CHAIN.chain_id,
            contract="CreditAggregator" if address == AGGREGATOR else "CollateralManager",
            address=address,  # type: ignore[arg-type]
            event=name,
            args={"loanId": self.ref, **args},
            block_number=number,
            block_hash="0x" + f"{number:064x}",
            tx_hash=tx or "0x" + uuid.uuid4().hex * 2,
            log_index=0,
        )

    def opened(self, **where: Any) -> ChainEvent:
        return self.event(
            "LoanOpened",
            borrower=BORROWER,
            providerId=b"\x11" * 32,
            pool="0x" + "00" * 20,
            asset=USDC,
            principal=PRINCIPAL,
            originationFee=5,
            rateBps=900,
            term=30 * 86_400,
            termsHash=b"\x22" * 32,
            collateralAsset=WETH,
            collateralAmount=10**18,
            offerDigest=bytes.fromhex(self.digest[2:]),
            **where,
        )

    def repaid(self, interest: int, principal: int, outstanding: int, **where: Any) -> ChainEvent:
        return self.event(
            "LoanRepaid",
            payer=BORROWER,
            interestPaid=interest,
            principalPaid=principal,
            outstandingPrincipal=outstanding,
            paymentRef=b"\x00" * 32,
            **where,
        )


def _types(ledger: InMemoryLedger) -> list[str]:
    return [event.event_type for _, event in ledger.published]


def test_a_loan_follows_its_facts_once_and_a_replay_changes_nothing() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    events = [loan.opened(), loan.repaid(7, 400_000_000, 600_000_000), loan.repaid(3, 600_000_000, 0)]
    events.append(loan.event("LoanClosed"))
    assert record_events(ledger, CHAIN, events, now=NOW) == 4
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.principal_paid, state.interest_paid) == (
        REPAID,
        0,
        PRINCIPAL,
        10,
    )
    assert (state.asset, state.funder, state.pool, state.created_at) == ("USDC", "0x" + "11" * 32, None, NOW)
    assert [e.principal_paid for e in ledger.entries if isinstance(e, RepaymentEntry)] == [400_000_000, 600_000_000]
    assert _types(ledger) == ["loan.opened", "loan.repayment", "loan.repayment", "loan.closed"]
    assert state.opened_outside_accept, "no quote of ours: flagged"

    assert record_events(ledger, CHAIN, reversed(events)) == 0  # the indexer after the receipt: nothing new
    assert ledger.loans[loan.id] == state
    assert len(ledger.published) == 4


def test_our_quote_links_the_loan_and_the_accept_unflags_what_the_indexer_flagged() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    ledger.quotes[loan.digest] = QuoteLink("q1", CHAIN.chain_id, AGGREGATOR.lower(), "alice", "sim-bank", "offered")
    opened = loan.opened()
    record_events(ledger, CHAIN, [opened])
    state = ledger.loans[loan.id]
    assert (state.quote_id, state.borrower_id, state.provider_id) == ("q1", "alice", "sim-bank")
    assert state.opened_outside_accept, "the quote was not held by an accept of ours"
    assert record_events(ledger, CHAIN, [opened], source=SOURCE_RECEIPT, via_accept=True) == 0
    assert not ledger.loans[loan.id].opened_outside_accept


def test_a_quote_of_another_chain_is_not_ours_and_the_wallet_names_the_borrower() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    ledger.quotes[loan.digest] = QuoteLink("q9", 1, AGGREGATOR, "mallory", "sim-bank", "accepted")
    ledger.wallets[to_checksum_address(BORROWER)] = "bob"  # wallets are stored checksummed
    record_events(ledger, CHAIN, [loan.opened()])
    state = ledger.loans[loan.id]
    assert (state.quote_id, state.borrower_id, state.opened_outside_accept) == (None, "bob", True)


def test_a_loan_closed_in_its_liquidation_transaction_is_liquidated_and_collateral_moves_after_opening() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    opening = loan.opened()
    record_events(ledger, CHAIN, [opening])
    deposit = loan.event("CollateralAdded", address=MANAGER, tx=opening.tx_hash, block=opening.block_number)
    deposit = replace(deposit, log_index=1, args=deposit.args | {"from": BORROWER, "asset": WETH, "amount": 10**18})
    more = loan.event("CollateralAdded", address=MANAGER)
    more = replace(more, args=more.args | {"from": BORROWER, "asset": WETH, "amount": 5})
    record_events(ledger, CHAIN, [deposit, more])
    assert ledger.loans[loan.id].collateral_amount == 10**18 + 5, "the deposit at opening is counted once"

    tx, block = "0x" + "99" * 32, loan.block + 1
    liquidated = loan.event(
        "LoanLiquidated", address=MANAGER, tx=tx, block=block, liquidator=BORROWER, debtRepaid=9, collateralSeized=4
    )
    repaid = replace(loan.repaid(0, PRINCIPAL, 0, tx=tx, block=block), log_index=1)
    closed = replace(loan.event("LoanClosed", tx=tx, block=block), log_index=2)
    record_events(ledger, CHAIN, [closed, repaid, liquidated])  # applied in chain order whatever the order given
    assert ledger.loans[loan.id].status == LIQUIDATED
    assert ledger.loans[loan.id].collateral_amount == 10**18 + 5 - 4, "what the liquidator seized is gone"
    assert [type(e) for e in ledger.entries] == [CollateralEntry, CollateralEntry, LiquidationEntry, RepaymentEntry]
    assert _types(ledger)[-3:] == ["loan.liquidated", "loan.repayment", "loan.closed"]


def test_a_loan_cancelled_unfunded_is_cancelled_owes_nothing_and_a_reorg_of_it_reopens_it() -> None:
    """``cancelUnfunded`` emits ``LoanCancelled`` then ``LoanClosed`` in one transaction: the loan is ``cancelled``
    (not ``repaid``), owes nothing, and its lender and borrower are told ``loan.cancelled`` then ``loan.closed``."""
    ledger, loan = InMemoryLedger(), Loan()
    opening = loan.opened()
    tx, block = "0x" + "cc" * 32, loan.block + 1
    cancelled = loan.event("LoanCancelled", tx=tx, block=block)
    closed = replace(loan.event("LoanClosed", tx=tx, block=block), log_index=1)
    record_events(ledger, CHAIN, [opening, closed, cancelled])  # applied in chain order whatever the order given
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.closed_tx_hash) == (CANCELLED, 0, tx)
    assert _types(ledger) == ["loan.opened", "loan.cancelled", "loan.closed"]
    assert ledger.published[-1][1].data["outcome"] == CANCELLED

    hashes = {opening.block_number: opening.block_hash, block: "0x" + "ee" * 32}  # the cancellation's block replaced
    record_batch(ledger, CHAIN, EventBatch(CHAIN.chain_id, opening.block_number, block, (), None, hashes))
    state = ledger.loans[loan.id]
    assert (state.status, state.outstanding_principal, state.closed_tx_hash) == (ACTIVE, PRINCIPAL, None)
    assert len(ledger.retractions) == 2, "loan.cancelled and loan.closed retracted"


def test_a_reorg_drops_the_removed_repayment_and_rebuilds_the_loan_from_what_is_left() -> None:
    ledger, loan = InMemoryLedger(), Loan()
    opening, first = loan.opened(), loan.repaid(1, 100, PRINCIPAL - 100)
    second = loan.repaid(2, 200, PRINCIPAL - 300)
    record_events(ledger, CHAIN, [opening, first, second])
    # block of the second repayment replaced by one without our events
    hashes = {opening.block_number: opening.block_hash, first.block_number: first.block_hash}
    hashes[second.block_number] = "0x" + "ee" * 32
    record_batch(ledger, CHAIN, EventBatch(CHAIN.chain_id, opening.block_number, second.block_number, (), None, hashes))
    state = ledger.loans[loan.id]
    assert (state.status, state.principal_paid, state.interest_paid) == (ACTIVE, 100, 1)
    assert state.outstanding_principal == PRINCIPAL - 100
    assert [e.fact_id for e in ledger.entries] == [2]
    assert len(ledger.published) == 3, "a rebuild writes no loan event"
    assert [(r.loan_id, r.tx_hash) for r in ledger.retractions] == [(loan.id, second.tx_hash)], "its event retracted"


def test_a_reorg_that_removes_the_opening_drops_the_loan_unless_the_range_opens_it_again() -> None:
    ledger, gone, moved = InMemoryLedger(), Loan(1), Loan(2)
    first, second = gone.opened(), moved.opened()
    record_events(ledger, CHAIN, [first, second])
    again = replace(second, block_number=second.block_number + 5, block_hash="0x" + "ab" * 32)
    hashes = {again.block_number: again.block_hash}
    batch = EventBatch(CHAIN.chain_id, first.block_number, again.block_number, (again,), None, hashes)
    record_batch(ledger, CHAIN, batch)
    assert gone.id not in ledger.loans
    state = ledger.loans[moved.id]
    assert (state.onchain_loan_id, state.block_number, state.block_hash) == (2, again.block_number, again.block_hash)
    assert sorted(f.block_number for _, f in ledger.facts_by_id.values()) == [again.block_number]


def test_a_receipts_transaction_re_mined_one_block_lower_counts_once() -> None:
    """A repayment read from its receipt at block n; a reorg mines the transaction again at n - 1, and the indexer's
    range ends there. The old fact lies outside the range: found by its transaction, it goes, and the loan counts the
    repayment once (it counted twice until a later range held block n)."""
    ledger, loan = InMemoryLedger(), Loan()
    opening = loan.opened()
    record_events(ledger, CHAIN, [opening])
    by_receipt = loan.repaid(1, 100, PRINCIPAL - 100, block=opening.block_number + 5)
    record_events(ledger, CHAIN, [by_receipt], source=SOURCE_RECEIPT)
    lower = by_receipt.block_number - 1
    again = replace(by_receipt, block_number=lower, block_hash="0x" + "ab" * 32)
    hashes = {lower: again.block_hash}
    record_batch(ledger, CHAIN, EventBatch(CHAIN.chain_id, lower, lower, (again,), None, hashes))
    state = ledger.loans[loan.id]
    assert (state.principal_paid, state.interest_paid, state.outstanding_principal) == (100, 1, PRINCIPAL - 100)
    assert [f.block_hash for _, f in ledger.facts_by_id.values() if f.event == "LoanRepaid"] == [again.block_hash]
    assert len([e for e in ledger.entries if isinstance(e, RepaymentEntry)]) == 1
