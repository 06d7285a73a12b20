"""The relayed repayment's own logic on the in-memory loan store and an in-process chain: whose loan it is, which
loans take a repayment here, the amount against what is owed now, the borrower's signature and allowance, one
transaction for the same signed repayment posted twice, and the outcome read from the receipt's events."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from eth_account import Account

from aggregator.errors import (
    AmountOverOwed,
    InvalidRepayment,
    LoanNotFound,
    LoanNotRepayable,
    RepaymentInProgress,
    RepaymentRejected,
)
from aggregator.loans import InMemoryLoanStore, LoanRecord
from aggregator.outbox_memory import InMemoryLeases
from aggregator.permit import CollateralPermit
from aggregator.repaying import MAX, RepaymentService, SignedRepayment, repayment_call, repayment_intent_key
from chain.errors import ConfirmationTimeout, GasEstimationFailed, TransactionDropped, TransactionReverted
from contracts.typed_data import REPAY_ALL, Repayment, repayment_typed_data
from store.chain import DROPPED, FAILED, SENT
from tests.support.relay_fakes import (
    AGGREGATOR,
    ASSETS,
    CHAIN_ID,
    CHAIN_NAME,
    USDC,
    FakeChain,
    FakeReceipts,
    event,
)
from tests.support.relay_fakes import LOAN as BASE_LOAN

pytestmark = pytest.mark.unit

BORROWER = Account.from_key("0x" + "11" * 32)
LOAN = replace(
    BASE_LOAN, borrower_id="alice", onchain_loan_id=5, borrower_address=BORROWER.address, pool="0x" + "d0" * 20
)


def _signed(amount: str, *, signer: object = BORROWER, nonce: int = 1) -> SignedRepayment:
    units = REPAY_ALL if amount == MAX else int(Decimal(amount) * USDC)
    repayment = Repayment(5, units, nonce, 2_000_000_000)
    document = repayment_typed_data(FakeChain().aggregator_domain, repayment)
    signature = signer.sign_typed_data(full_message=document).signature  # type: ignore[attr-defined]
    return SignedRepayment(amount, nonce, 2_000_000_000, bytes(signature), None)


def _service(
    chain: FakeChain, receipts: FakeReceipts, *loans: LoanRecord, leases: InMemoryLeases | None = None
) -> RepaymentService:
    """The service on ``loans`` (LOAN unless given), a loan's claims taken in ``leases`` when given (another
    process's claim waited for up to the service's wait, a second)."""
    store = InMemoryLoanStore()
    store.loans = {loan.id: loan for loan in loans or (LOAN,)}
    return RepaymentService(store, {CHAIN_NAME: chain.runtime()}, ASSETS, receipts, wait_seconds=1, leases=leases)


async def test_a_repayment_is_relayed_once_and_answered_from_its_receipt() -> None:
    chain = FakeChain(owed=(100 * USDC, USDC), allowance=10 * USDC)
    receipts = FakeReceipts()
    service = _service(chain, receipts)
    signed = _signed("10")
    receipts.events["0x" + f"{1:064x}"] = [
        event(
            "LoanRepaid",
            "0x" + f"{1:064x}",
            loanId=5,
            interestPaid=USDC,
            principalPaid=9 * USDC,
            outstandingPrincipal=91 * USDC,
        ),
        event("LoanRepaid", "0x" + f"{1:064x}", loanId=6, interestPaid=0, principalPaid=1, outstandingPrincipal=0),
    ]
    first = await service.repay("alice", "l1", signed)
    again = await service.repay("alice", "l1", signed)  # a retry: its transaction's outcome, no second one

    assert first == again
    assert (first.status, first.interest_paid, first.principal_paid, first.outstanding_principal) == (
        "confirmed",
        USDC,
        9 * USDC,
        91 * USDC,
    )
    assert not first.closed
    assert first.block_number == 7
    [(intent, (call, _))] = chain.transactions.sent.items()
    assert intent.startswith(f"repay:{CHAIN_ID}:0x")
    assert call.to == AGGREGATOR
    assert receipts.recorded == [first.tx_hash, first.tx_hash]


async def test_max_pays_everything_owed_and_reports_the_close() -> None:
    chain = FakeChain(owed=(100 * USDC, USDC), allowance=101 * USDC)
    receipts = FakeReceipts()
    tx = "0x" + f"{1:064x}"
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=USDC, principalPaid=100 * USDC, outstandingPrincipal=0),
        event("LoanClosed", tx, loanId=5),
    ]
    outcome = await _service(chain, receipts).repay("alice", "l1", _signed(MAX))
    assert outcome.closed
    assert outcome.outstanding_principal == 0


async def test_max_must_be_covered_until_its_deadline_as_the_contract_accrues() -> None:
    # 100 USDC at 10% from the deadline's year before: ten more USDC by the deadline, rounded up as the contract does
    year_before = 2_000_000_000 - 365 * 86_400
    covered = 100 * USDC + 10 * USDC + USDC
    receipts = FakeReceipts()
    short = FakeChain(owed=(100 * USDC, USDC), rate_bps=1_000, accrued_at=year_before, allowance=covered - 1)
    with pytest.raises(InvalidRepayment, match=rf"by the repayment's deadline \({covered}\)"):
        await _service(short, receipts).repay("alice", "l1", _signed(MAX))
    assert short.transactions.submitted == [], "nothing is sent"

    enough = FakeChain(owed=(100 * USDC, USDC), rate_bps=1_000, accrued_at=year_before, allowance=covered)
    tx = "0x" + f"{1:064x}"
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=USDC, principalPaid=100 * USDC, outstandingPrincipal=0),
        event("LoanClosed", tx, loanId=5),
    ]
    assert (await _service(enough, receipts).repay("alice", "l1", _signed(MAX))).closed


async def test_only_the_borrowers_own_pool_loan_on_a_configured_chain_takes_a_repayment() -> None:
    chain, receipts = FakeChain(owed=(USDC, 0), allowance=USDC), FakeReceipts()
    loans = (
        LOAN,
        replace(LOAN, id="bank", pool=None),
        replace(LOAN, id="far", chain_name="elsewhere"),
        replace(LOAN, id="repaid", status="repaid"),
        replace(LOAN, id="earlier", contract="0x" + "a1" * 20),  # relayed, it would repay the newest's loan 5
    )
    service = _service(chain, receipts, *loans)
    with pytest.raises(LoanNotFound):
        await service.repay("bob", "l1", _signed("1"))  # not bob's: as unknown
    with pytest.raises(LoanNotFound):
        await service.repay("alice", "nope", _signed("1"))
    with pytest.raises(LoanNotRepayable, match="off-chain"):
        await service.repay("alice", "bank", _signed("1"))
    with pytest.raises(LoanNotRepayable, match="elsewhere"):
        await service.repay("alice", "far", _signed("1"))
    with pytest.raises(LoanNotRepayable, match="it is repaid"):
        await service.repay("alice", "repaid", _signed("1"))
    with pytest.raises(LoanNotRepayable, match="earlier deployment of the contracts on ethereum-local"):
        await service.repay("alice", "earlier", _signed("1"))
    assert chain.transactions.sent == {}


async def test_the_amount_signature_and_allowance_are_checked_before_anything_is_sent() -> None:
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=2 * USDC), FakeReceipts()
    service = _service(chain, receipts)
    with pytest.raises(AmountOverOwed, match=r"more than the 5(\.0+)? owed"):
        await service.repay("alice", "l1", _signed("6"))
    with pytest.raises(InvalidRepayment, match="amount"):
        await service.repay("alice", "l1", _signed("0.0000001"))
    with pytest.raises(InvalidRepayment, match="not the loan's borrower"):
        await service.repay("alice", "l1", _signed("1", signer=Account.from_key("0x" + "22" * 32)))
    signed = _signed("1")
    no_recovery_id = replace(signed, signature=signed.signature[:64] + bytes([5]))  # v is 27/28 (or 0/1), never 5
    with pytest.raises(InvalidRepayment, match="recovers no signer"):  # was a ValueError: a 500
        await service.repay("alice", "l1", no_recovery_id)
    with pytest.raises(InvalidRepayment, match="allowance"):
        await service.repay("alice", "l1", _signed("3"))
    chain.owed = (0, 0)
    with pytest.raises(LoanNotRepayable, match="nothing is owed"):
        await service.repay("alice", "l1", _signed("1"))
    assert chain.transactions.sent == {}


async def test_a_repayment_refused_before_it_was_sent_stays_refused() -> None:
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    service = _service(chain, receipts)
    signed = _signed("1")
    chain.transactions.refuse = GasEstimationFailed("execution reverted", decoded="InvalidSignature()")
    with pytest.raises(RepaymentRejected, match="InvalidSignature"):
        await service.repay("alice", "l1", signed)
    chain.transactions.refuse = None
    with pytest.raises(RepaymentRejected, match="execution reverted"):  # the stored refusal, nothing sent anew
        await service.repay("alice", "l1", signed)
    assert [sent.status for _, sent in chain.transactions.sent.values()] == [FAILED]
    assert receipts.recorded == []


async def test_a_repayment_not_mined_within_the_wait_is_answered_as_submitted() -> None:
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    chain.transactions.outcome = ConfirmationTimeout("repay", 1)
    outcome = await _service(chain, receipts).repay("alice", "l1", _signed("1"))
    assert (outcome.status, outcome.tx_hash) == ("submitted", "0x" + f"{1:064x}")
    assert receipts.recorded == []  # the ledger records it from the chain when it is mined


async def test_a_repayment_signature_no_key_made_is_refused_as_a_repayment_and_left_to_a_contract_wallet() -> None:
    """r and s zero (eth-keys' BadSignature, not a ValueError) escaped to the acceptance's handler: a 422 titled
    "The acceptance signature does not verify" for a repayment. It is the repayment's invalid signature now, and a
    contract wallet's (ERC-1271, an approved-hash signature) is the contract's to judge."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    zeros = replace(_signed("1"), signature=bytes(64) + b"\x1b")
    with pytest.raises(InvalidRepayment, match="recovers no signer"):
        await _service(chain, receipts).repay("alice", "l1", zeros)
    assert chain.transactions.sent == {}


async def test_a_repayment_or_permit_past_its_deadline_by_the_chains_time_is_refused_naming_it() -> None:
    """The chain's time, not this computer's, judges a deadline: a devnet moved on runs ahead."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC, now=2_000_000_001), FakeReceipts()
    with pytest.raises(InvalidRepayment, match="expired at 2000000000; the chain's time is 2000000001") as late:
        await _service(chain, receipts).repay("alice", "l1", _signed("1"))
    assert late.value.field == "deadline"
    chain.now = 1_900_000_000
    permit = CollateralPermit(USDC, 1_899_999_999, 27, b"\x01" * 32, b"\x01" * 32)
    with pytest.raises(InvalidRepayment, match="expired at 1899999999; the chain's time is 1900000000") as stale:
        await _service(chain, receipts).repay("alice", "l1", replace(_signed("1"), permit=permit))
    assert stale.value.field == "permit.deadline"
    assert chain.transactions.sent == {}


async def test_a_repayment_whose_transaction_was_dropped_is_answered_to_be_signed_anew() -> None:
    """A dropped transaction (its nonce taken by another of the relayer's) answered 503 "ask again shortly", and so
    did every post of the same signed repayment after it: it is the same calldata, dropped for good."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    service, signed = _service(chain, receipts), _signed("1")
    chain.transactions.outcome = TransactionDropped("repay:31337:0xabc: nonce 4 taken", "repay:31337:0xabc")
    with pytest.raises(RepaymentRejected, match=r"dropped before it was mined .*: sign a new repayment") as dropped:
        await service.repay("alice", "l1", signed)
    assert "repay:" not in str(dropped.value)
    [(_, sent)] = chain.transactions.sent.values()
    sent.status, chain.transactions.outcome = DROPPED, None
    with pytest.raises(RepaymentRejected, match="sign a new repayment"):
        await service.repay("alice", "l1", signed)
    assert len(chain.transactions.submitted) == 1, "not submitted again"
    assert receipts.recorded == []


async def test_a_loan_the_chain_no_longer_repays_is_not_repayable_and_the_intent_key_is_never_told() -> None:
    """A repayment racing another (sent by another process) reverted LoanNotActive, answered 422 "the chain refused
    the repayment: repay:31337:0x… reverted in block 56: LoanNotActive(1)", the platform's intent key in it."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    service = _service(chain, receipts)
    signed, other = _signed("1"), _signed("1", nonce=2)
    intent, other_intent = _intent_of(chain, signed), _intent_of(chain, other)
    chain.transactions.outcome = TransactionReverted(f"{intent} reverted in block 56: LoanNotActive(5)", "0x01")
    with pytest.raises(LoanNotRepayable, match=r"its transaction reverted in block 56: LoanNotActive\(5\)") as closed:
        await service.repay("alice", "l1", signed)
    assert intent not in str(closed.value)
    chain.transactions.outcome = TransactionReverted(f"{other_intent} reverted in block 57: RepaymentNonceUsed(x)")
    with pytest.raises(RepaymentRejected, match=r"its transaction reverted in block 57") as rejected:
        await service.repay("alice", "l1", other)
    assert "repay:" not in str(rejected.value)
    message = "gas estimate failed on ethereum-local: execution reverted [NothingOwed(5)]"  # as the manager words it
    chain.transactions.refuse = GasEstimationFailed(message, decoded="NothingOwed(5)")
    with pytest.raises(LoanNotRepayable, match=r"NothingOwed\(5\)"):
        await service.repay("alice", "l1", _signed("1", nonce=3))
    chain.transactions.refuse = None
    with pytest.raises(LoanNotRepayable, match=r"NothingOwed\(5\)"):  # the stored refusal, answered the same
        await service.repay("alice", "l1", _signed("1", nonce=3))


def _intent_of(chain: FakeChain, signed: SignedRepayment) -> str:
    """The intent key the service sends a signed repayment of 1 USDC under."""
    call = repayment_call(chain.aggregator(), Repayment(5, USDC, signed.nonce, signed.deadline), signed)
    return repayment_intent_key(CHAIN_ID, call)


async def test_a_repayment_another_process_holds_the_loan_past_the_wait_for_is_in_progress_to_post_again() -> None:
    """Another process held the loan's claim for all of the wait: answered 409 ``loan-not-repayable`` ("the loan
    takes no repayment here") without Retry-After, which the idempotency middleware kept — the same key replayed it
    for a day — and clients read as final. Nothing of it was sent: it is a repayment in progress, posted again once
    the other is done."""
    chain, receipts, leases = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts(), InMemoryLeases()
    service, signed = _service(chain, receipts, leases=leases), _signed("1")
    other = await leases.acquire(f"repayment:{LOAN.id}", 0, "repayment-of-another-process", timedelta(seconds=30))
    assert other is not None
    with pytest.raises(RepaymentInProgress, match="another of the platform's processes is still sending one") as busy:
        await service.repay("alice", "l1", signed)
    assert not isinstance(busy.value, LoanNotRepayable)
    assert chain.transactions.submitted == [], "nothing was sent"
    await leases.release(other)
    tx = "0x" + f"{1:064x}"
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=0, principalPaid=USDC, outstandingPrincipal=0)
    ]
    assert (await service.repay("alice", "l1", signed)).status == "confirmed", "the same repayment posted again"


async def test_a_new_repayment_while_one_answered_submitted_is_on_its_way_is_in_progress_and_never_sent() -> None:
    """A repayment not confirmed within the wait (202 ``submitted``) gave the loan's claim up with its transaction in
    flight: the next was checked against the loan as it was before that one is mined and sent — a second ``"max"``
    reverted at the relayer's cost. Until the first is confirmed or ends, a new one is a repayment in progress,
    nothing of it sent; the same signed repayment posted again follows its own transaction."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    service, first = _service(chain, receipts), _signed(MAX)
    chain.transactions.outcome = ConfirmationTimeout("repay", 1)
    submitted = await service.repay("alice", "l1", first)
    assert submitted.status == "submitted"
    chain.transactions.outcome = None
    with pytest.raises(RepaymentInProgress, match="its transaction is sent and not yet confirmed") as busy:
        await service.repay("alice", "l1", _signed(MAX, nonce=2))
    assert "repay:" not in str(busy.value), "the platform's intent key is not the borrower's business"
    assert len(chain.transactions.submitted) == 1, "the second was never sent"

    tx = submitted.tx_hash or ""
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=0, principalPaid=5 * USDC, outstandingPrincipal=0),
        event("LoanClosed", tx, loanId=5),
    ]
    assert (await service.repay("alice", "l1", first)).closed, "the first posted again: its transaction's outcome"
    chain.owed = (0, 0)  # mined: the next is checked against the loan the first left
    with pytest.raises(LoanNotRepayable, match="nothing is owed"):
        await service.repay("alice", "l1", _signed(MAX, nonce=2))
    assert len(chain.transactions.sent) == 1


async def test_an_open_repayment_an_earlier_relayer_key_left_holds_nothing_up() -> None:
    """The relayer's key rotated with a repayment of the loan still open under the old one: no transaction manager
    follows another sender's intents, so it would stay open, and every repayment of the loan was refused
    ``repayment-in-progress`` for good (review C)."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    signed = _signed("1")
    left = repayment_call(chain.aggregator(), Repayment(5, USDC, 9, signed.deadline), signed)
    orphan = await chain.transactions.submit(repayment_intent_key(CHAIN_ID, left), left)
    orphan.status, orphan.sender = SENT, "0x" + "0e" * 20
    tx = "0x" + f"{2:064x}"
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=0, principalPaid=USDC, outstandingPrincipal=0)
    ]
    assert (await _service(chain, receipts).repay("alice", "l1", signed)).status == "confirmed"


async def test_only_an_open_repayment_of_the_same_loan_of_the_same_contract_holds_a_new_one_up() -> None:
    """The relayer's open repayments of another loan, or of an earlier deployment's loan of the same id, hold nothing
    up: a repayment's loan is read from its calldata and contract."""
    chain, receipts = FakeChain(owed=(5 * USDC, 0), allowance=5 * USDC), FakeReceipts()
    signed = _signed("1")
    earlier = FakeChain(address="0x" + "a1" * 20).aggregator()
    for contract, loan_ref in ((chain.aggregator(), 6), (earlier, 5)):
        call = repayment_call(contract, Repayment(loan_ref, USDC, 9, signed.deadline), signed)
        (await chain.transactions.submit(repayment_intent_key(CHAIN_ID, call), call)).status = SENT
    tx = "0x" + f"{3:064x}"
    receipts.events[tx] = [
        event("LoanRepaid", tx, loanId=5, interestPaid=0, principalPaid=USDC, outstandingPrincipal=0)
    ]
    assert (await _service(chain, receipts).repay("alice", "l1", signed)).status == "confirmed"
    assert len(chain.transactions.sent) == 3
