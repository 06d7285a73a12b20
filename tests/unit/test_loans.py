"""Reading loans on the in-memory fake: each reader sees its own loans (404 otherwise, as for an unknown id), newest
first a page at a time; live figures only while a loan is active or in default, and the record still answers when
the chain does not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import cast

import pytest
from eth_utils.crypto import keccak

from aggregator.errors import LoanNotFound
from aggregator.loans import (
    NO_DEBT,
    UNFUNDED_LIVE,
    ChainRef,
    InMemoryLoanStore,
    LiveFigures,
    LoanEntries,
    LoanFlag,
    LoanRecord,
    LoanScope,
    LoanService,
    Repayment,
    health_factor,
    unpriced_reason,
)
from aggregator.platform import ChainRuntime
from aggregator.servicing.delinquency import Bucket
from api.render import health_factor_text
from chain.errors import ChainError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LOAN = LoanRecord("l0", "ethereum-local", 31337, "0x" + "11" * 20, "active", "USDC", 10**9, "0x" + "ab" * 32, NOW)
#: the chain the loans are on, its CreditAggregator the loans' (live figures come from the fake reader)
_CHAIN = cast(
    ChainRuntime, SimpleNamespace(name="ethereum-local", aggregator=lambda: SimpleNamespace(address=LOAN.contract))
)
WHERE = ChainRef(7, "0x" + "cd" * 32, "0x" + "ef" * 32, 0)


def _store() -> InMemoryLoanStore:
    store = InMemoryLoanStore()
    loans = [
        replace(LOAN, id="a1", borrower_id="alice", provider_id="sim-bank", onchain_loan_id=1),
        replace(LOAN, id="a2", borrower_id="alice", created_at=NOW + timedelta(seconds=1), status="repaid"),
        replace(LOAN, id="a3", borrower_id="alice", created_at=NOW + timedelta(seconds=2), onchain_loan_id=3),
        replace(LOAN, id="b1", borrower_id="bob", provider_id="pool:ethereum-local:USDC", onchain_loan_id=4),
    ]
    store.loans = {loan.id: loan for loan in loans}
    store.entries["a1"] = LoanEntries(repayments=[Repayment("0xalice", 5, 95, 10**9 - 95, "0x" + "00" * 32, WHERE)])
    return store


class FakeChain:
    """Live figures per on-chain loan id; a loan id it does not know fails as an RPC outage would."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def __call__(self, chain: ChainRuntime, loan_ref: int) -> LiveFigures:
        self.asked.append(loan_ref)
        if loan_ref == 3:
            raise ChainError("RPC https://rpc.example/v3/PROJECT-KEY did not answer eth_chainId")
        return LiveFigures(100, 900, 12, Decimal("1.5"))


def _service(live: FakeChain) -> LoanService:
    return LoanService(_store(), {"ethereum-local": _CHAIN}, live=live)


async def test_a_loan_is_shown_with_its_entries_and_live_figures_only_to_whom_it_belongs() -> None:
    live = FakeChain()
    loans = _service(live)
    detail = await loans.detail("a1", LoanScope(borrower_id="alice"))
    assert [r.principal_paid for r in detail.entries.repayments] == [95]
    assert detail.live is not None
    assert detail.live.total_owed == 912
    assert (await loans.detail("a1", LoanScope(provider_id="sim-bank"))).loan.id == "a1"
    for scope in (LoanScope(borrower_id="bob"), LoanScope(provider_id="pool:ethereum-local:USDC")):
        with pytest.raises(LoanNotFound):
            await loans.detail("a1", scope)
    with pytest.raises(LoanNotFound):
        await loans.detail("nope", LoanScope())


async def test_live_figures_only_while_owed_and_the_record_answers_when_the_chain_does_not() -> None:
    live = FakeChain()
    loans = _service(live)
    repaid = await loans.detail("a2", LoanScope())
    assert (repaid.live, repaid.live_error) == (None, None)
    unreachable = await loans.detail("a3", LoanScope())
    assert unreachable.live is None
    assert unreachable.live_error == "chain ethereum-local did not answer", "the node's own message is not shown"
    assert live.asked == [3], "a repaid loan is not read from the chain"


async def test_an_unfunded_loan_shows_nothing_owed_or_past_due_and_is_listed_by_its_flag() -> None:
    """Owed on-chain, but its lender never paid the borrower out: no live figures, no days past due, and the chain
    is not asked; a list by the ``unfunded`` flag holds it alone."""
    store, live = _store(), FakeChain()
    store.loans["a1"] = replace(store.loans["a1"], unfunded=True, quote_id="q1")
    loans = LoanService(store, {"ethereum-local": _CHAIN}, live=live)
    shown = await loans.detail("a1", LoanScope())
    assert (shown.live, shown.live_error) == (None, UNFUNDED_LIVE)
    assert shown.loan.flags == [LoanFlag.UNFUNDED]
    assert live.asked == []
    assert await loans.delinquencies([shown.loan]) == {}
    assert [loan.id for loan in loans.page(LoanScope(), None, 10, LoanFlag.UNFUNDED)] == ["a1"]
    assert [loan.id for loan in loans.page(LoanScope(borrower_id="bob"), None, 10, LoanFlag.UNFUNDED)] == []
    assert [loan.id for loan in loans.page(LoanScope(), None, 10, LoanFlag.NO_QUOTE)] == ["a3", "a2", "b1"]


async def test_a_loan_of_an_earlier_deployment_shows_no_other_loans_figures() -> None:
    """The chain's deployment record names a newer CreditAggregator, whose loans are numbered from 1 again: a loan of
    the earlier one is shown without live figures, the reason named, and no days past due (the chain is not asked
    for the newer deployment's loan of the same id)."""
    store, live = _store(), FakeChain()
    store.loans["a1"] = replace(store.loans["a1"], contract="0x" + "22" * 20)
    loans = LoanService(store, {"ethereum-local": _CHAIN}, live=live)
    shown = await loans.detail("a1", LoanScope())
    assert shown.live is None
    assert shown.live_error is not None
    assert "earlier deployment" in shown.live_error
    assert "0x" + "22" * 20 in shown.live_error
    assert live.asked == []
    assert await loans.delinquencies([shown.loan]) == {}


def test_pages_are_newest_first_and_scoped() -> None:
    loans = _service(FakeChain())
    alice = LoanScope(borrower_id="alice")
    first = loans.page(alice, None, 2)
    assert [loan.id for loan in first] == ["a3", "a2"]
    rest = loans.page(alice, (first[-1].created_at, first[-1].id), 2)
    assert [loan.id for loan in rest] == ["a1"]
    everyone = loans.page(LoanScope(), None, 10)
    assert [loan.id for loan in everyone] == ["a3", "a2", "b1", "a1"]  # created at one time: id descending
    assert loans.get("b1", LoanScope(provider_id="pool:ethereum-local:USDC")).borrower_id == "bob"


async def test_an_amortizing_loan_is_past_due_by_its_disclosed_schedule_and_what_it_repaid() -> None:
    """The loan's quote disclosed two installments; 20 of interest and 495 of principal are repaid (the ledger's
    figures), less than the first installment's 520: five days after that installment's due date it is 5 days past
    due, though its maturity is a month away."""
    store = _store()
    store.loans["a1"] = replace(store.loans["a1"], quote_id="q1", interest_paid=20, principal_paid=495)
    store.disclosures["q1"] = {
        "assetDecimals": 0,
        "payments": [
            {"number": 2, "due": "2026-12-26", "amount": "510", "principal": "500", "interest": "10"},
            {"number": 1, "due": "2026-11-26", "amount": "520", "principal": "500", "interest": "20"},
        ],
    }
    five_days_late = int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp())
    maturity = int(datetime(2026, 12, 26, tzinfo=UTC).timestamp())

    async def live(chain: ChainRuntime, loan_ref: int) -> LiveFigures:
        return LiveFigures(100, 905, 12, Decimal("1.5"), maturity=maturity, block_time=five_days_late)

    detail = await LoanService(store, {"ethereum-local": _CHAIN}, live=live).detail("a1", LoanScope())
    assert [i.number for i in detail.schedule] == [1, 2]
    assert detail.live is not None
    assert (detail.live.paid, len(detail.live.schedule)) == (515, 2)
    assert detail.live.delinquency.days_past_due == 5
    assert detail.live.delinquency.bucket is Bucket.DPD_1_29


def test_a_health_factor_is_read_exactly_whatever_its_size() -> None:
    """The chain's 18-decimal health factor as a decimal and as the API shows it: exact to four places rounded
    down, for a factor past the default context's 28 digits too (it raised ``InvalidOperation`` when shown)."""
    assert health_factor(NO_DEBT) is None
    assert health_factor_text(cast(Decimal, health_factor(1_485_999_999_999_999_999))) == "1.4859"
    assert health_factor_text(cast(Decimal, health_factor(999_999_999_999_999_999))) == "0.9999"  # not liquidatable
    largest = NO_DEBT - 1
    assert health_factor(largest) == Decimal(f"{largest // 10**18}.{largest % 10**18:018d}")
    shown = health_factor_text(cast(Decimal, health_factor(largest)))
    assert shown == f"{largest // 10**18}.{largest % 10**18:018d}"[:-14]


def test_why_a_position_is_not_priced_is_named_from_the_managers_revert() -> None:
    sequencer_down = "0x" + keccak(text="SequencerDown()")[:4].hex()
    assert unpriced_reason(sequencer_down) == (
        "the chain's sequencer is down: the position is not priced now, so it cannot be liquidated until the feeds "
        "price it again"
    )
    assert unpriced_reason("0xdeadbeef").startswith("the CollateralManager refused to price it (reverted)")
