"""The transactions the platform sent as its own, reconciled on facts and records given directly: each confirmed
intent's transaction has its event for the loan its key names (a repayment's ``LoanRepaid``, a ``markDefault``'s
``LoanDefaulted``, a ``cancelUnfunded``'s ``LoanCancelled``, a hold's or release's ``LiquidationHoldChanged`` with its
flag); a ``LiquidationHoldChanged`` no intent of ours made is reported."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.servicing.defaults import cancel_intent_key, default_intent_key, hold_intent_key, release_intent_key
from compliance.reconcile import Category, ChainScope, Fact, Records, RelayedIntent, reconcile_chain

pytestmark = pytest.mark.unit

AGGREGATOR, MANAGER, TIMELOCK = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
SCOPE = ChainScope("ethereum-local", 31337, 1, 100, "0x" + "99" * 20, TIMELOCK)
TX = ["0x" + f"{n:02x}" * 32 for n in range(10)]
# the operator's intents of loans 5 to 8, keyed as the default job keys them (by contract and loan id)
DEFAULT_5, CANCEL_6, CANCEL_8 = (default_intent_key(31337, AGGREGATOR, 5), cancel_intent_key(31337, AGGREGATOR, 6),
                                 cancel_intent_key(31337, AGGREGATOR, 8))  # fmt: skip
HOLD_6, RELEASE_7 = hold_intent_key(31337, MANAGER, 6), release_intent_key(31337, MANAGER, 7)


def _fact(event: str, tx: str, **args: Any) -> Fact:
    contract, address = ("CollateralManager", MANAGER) if event == "LiquidationHoldChanged" else (
        "CreditAggregator", AGGREGATOR)  # fmt: skip
    return Fact("ethereum-local", contract, address, event, args, 10, tx, 0)


def _found(
    facts: list[Fact], intents: list[RelayedIntent], what: str, holds: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """The items of the run about ``what`` (an intent's kind, or an event); ``holds``: the hold transactions of ours."""
    result = reconcile_chain(SCOPE, facts, Records(relayed_intents=intents, hold_transactions=holds))
    return [(item.category.value, item.subject) for item in result.items if item.what.endswith(what)]


def test_each_intent_is_matched_with_the_event_of_its_loan_in_its_transaction() -> None:
    facts = [
        _fact("LoanRepaid", TX[1], loanId=4, paymentRef=bytes(32)),
        _fact("LoanDefaulted", TX[2], loanId=5),
        _fact("LoanCancelled", TX[3], loanId=6),
        _fact("LiquidationHoldChanged", TX[4], loanId=6, held=True),
        _fact("LiquidationHoldChanged", TX[5], loanId=7, held=False),
    ]
    intents = [
        RelayedIntent("repay:31337:0xabc", TX[1], 10),
        RelayedIntent(DEFAULT_5, TX[2], 10),
        RelayedIntent(CANCEL_6, TX[3], 10),
        RelayedIntent(HOLD_6, TX[4], 10),
        RelayedIntent(RELEASE_7, TX[5], 10),
    ]
    result = reconcile_chain(SCOPE, facts, Records(relayed_intents=intents, hold_transactions=frozenset(TX[4:6])))
    assert [item for item in result.items if item.what.endswith(("intent", "LiquidationHoldChanged"))] == []
    assert result.counts[Category.MATCHED.value] == 5  # (the loans themselves are not in these records)


def test_an_intent_whose_transaction_lacks_its_event_is_reported() -> None:
    facts = [
        _fact("LoanDefaulted", TX[2], loanId=9),  # another loan's default
        _fact("LiquidationHoldChanged", TX[4], loanId=6, held=False),  # a release, not the hold
    ]
    intents = [
        RelayedIntent(DEFAULT_5, TX[2], 10),
        RelayedIntent(HOLD_6, TX[4], 10),
        RelayedIntent(CANCEL_8, TX[6], 10),  # nothing at all in its transaction
        RelayedIntent(CANCEL_8, TX[7], 500),  # outside the run's range: not judged
    ]
    assert _found(facts, intents, "intent") == [
        ("recorded-not-on-chain", DEFAULT_5),
        ("recorded-not-on-chain", HOLD_6),
        ("recorded-not-on-chain", CANCEL_8),
    ]


def test_a_liquidation_hold_no_intent_of_ours_made_is_reported() -> None:
    facts = [
        _fact("LiquidationHoldChanged", TX[4], loanId=6, held=True),
        _fact("LiquidationHoldChanged", TX[8], loanId=3, held=True),
    ]
    intents = [RelayedIntent(HOLD_6, TX[4], 10)]
    holds = frozenset({TX[4].upper().replace("0X", "0x")})  # the case of a hash does not matter
    assert _found(facts, intents, "LiquidationHoldChanged", holds) == [("on-chain-not-recorded", "loan 3")]


def test_a_hold_of_ours_not_yet_confirmed_is_not_reported_as_someone_elses() -> None:
    """The run reads to the confirmed head, which the operator's transaction manager may not have marked confirmed
    yet (its next round, or its process stopped): the hold's transaction is ours all the same."""
    facts = [_fact("LiquidationHoldChanged", TX[4], loanId=6, held=True)]
    assert _found(facts, [], "LiquidationHoldChanged", frozenset({TX[4]})) == []
    assert _found(facts, [], "LiquidationHoldChanged") == [("on-chain-not-recorded", "loan 6")]


def test_a_later_attempt_at_a_hold_or_release_is_matched_with_the_event_of_its_loan() -> None:
    """A hold or release the node refused is sent again under its next attempt's key (``:<n>`` after the loan id):
    the loan is the id before it, not the attempt's number."""
    release_7, hold_6 = release_intent_key(31337, MANAGER, 7, attempt=2), hold_intent_key(31337, MANAGER, 6, attempt=3)
    assert (release_7, hold_6) == (RELEASE_7 + ":2", HOLD_6 + ":3")
    facts = [
        _fact("LiquidationHoldChanged", TX[4], loanId=6, held=True),
        _fact("LiquidationHoldChanged", TX[5], loanId=7, held=False),
        _fact("LiquidationHoldChanged", TX[6], loanId=2, held=False),  # the attempt's number, not its loan
    ]
    intents = [RelayedIntent(hold_6, TX[4], 10), RelayedIntent(release_7, TX[5], 10),
               RelayedIntent(RELEASE_7 + ":2", TX[6], 10)]  # fmt: skip
    assert _found(facts, intents, "intent", frozenset(TX[4:7])) == [("recorded-not-on-chain", RELEASE_7 + ":2")]


def test_a_later_attempt_at_a_default_or_cancel_is_matched_with_the_event_of_its_loan() -> None:
    """A ``markDefault`` or ``cancelUnfunded`` the node refused is sent again under its next attempt's key, numbered as
    a hold's: the loan is the id before the number; an attempt whose transaction has another loan's event is
    reported."""
    default_5, cancel_6 = default_intent_key(31337, AGGREGATOR, 5, 2), cancel_intent_key(31337, AGGREGATOR, 6, 4)
    assert (default_5, cancel_6) == (DEFAULT_5 + ":2", CANCEL_6 + ":4")
    facts = [
        _fact("LoanDefaulted", TX[1], loanId=5),
        _fact("LoanCancelled", TX[2], loanId=6),
        _fact("LoanCancelled", TX[3], loanId=4),  # the attempt's number, not its loan
    ]
    intents = [RelayedIntent(default_5, TX[1], 10), RelayedIntent(cancel_6, TX[2], 10),
               RelayedIntent(CANCEL_8 + ":4", TX[3], 10)]  # fmt: skip
    assert _found(facts, intents, "intent") == [("recorded-not-on-chain", CANCEL_8 + ":4")]
