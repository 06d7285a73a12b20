"""``sender_funds``' rules alone: which refusals are the account's funds, the pause between attempts, and how many
refusals in a row a loan's action has behind it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.servicing.sender_funds import cost, funds_message, pause, refusals_in_a_row, refused_for_funds
from store.chain import DROPPED, FAILED, REVERTED, AttemptRecord, IntentRecord

pytestmark = pytest.mark.unit

NODE_SAYS = "ethereum-local refused markDefault:1:0xabc:1: insufficient funds for gas * price + value"


def _intent(status: str, error: str | None = None, gas: int = 0, fee: int = 0) -> IntentRecord:
    attempts = () if not gas else (AttemptRecord("0x01", 0, fee, 1, gas, "0x", "rejected", datetime.now(UTC)),)
    return IntentRecord("k", 1, "0xabc", "0xdef", "0x", 0, gas or None, "0x", status, error=error, attempts=attempts)


def test_only_a_refusal_for_the_account_s_funds_counts() -> None:
    assert funds_message(NODE_SAYS)
    assert funds_message("Insufficient balance for transfer")
    assert not funds_message("nonce too low")
    assert refused_for_funds(_intent(FAILED, NODE_SAYS))
    assert not refused_for_funds(_intent(FAILED, "max fee per gas less than block base fee"))
    assert not refused_for_funds(_intent(REVERTED, NODE_SAYS)), "a revert is the contract's answer"


def test_the_pause_doubles_per_refusal_up_to_the_most() -> None:
    assert [pause(n, 60, 3_600) for n in (1, 2, 3, 6, 7, 40)] == [60, 120, 240, 1_920, 3_600, 3_600]


def test_refusals_are_counted_back_from_the_latest_attempt() -> None:
    refused, dropped = _intent(FAILED, NODE_SAYS), _intent(DROPPED, "replaced")
    assert refusals_in_a_row([refused, dropped]) == 0
    assert refusals_in_a_row([dropped, refused, refused]) == 2
    assert refusals_in_a_row([]) == 0


def test_the_cost_of_a_refused_attempt_is_its_gas_at_its_fee_cap() -> None:
    assert cost(_intent(FAILED, NODE_SAYS, gas=100_000, fee=2_000_000_000)) == 200_000_000_000_000
    assert cost(_intent(FAILED, NODE_SAYS)) is None
