"""The intents sent one per attempt, read on a SQLite intent store whose attempts of a loan start past the first: the
code before 0037/0038 keyed them by the chain and the loan's number and sent each attempt to the contract of the day,
so an earlier deployment's loan 9, its first attempt not taken, had its second sent to a later deployment's
contract; 0037/0038 rekeyed each attempt by the contract it was sent to, and the later contract's attempts of loan 9
start at 2. Each reader takes every attempt stored, not each number up to the first missing one, which read as
nothing sent: a payment sent again (credited twice: the contract does not refuse a ``paymentRef`` it recorded), a
``markDefault``, hold, claim or liquidation sent over the one in flight."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_utils.address import to_checksum_address

from aggregator.offchain_payments import _attempt, payment_ref_hash, record_intent_key
from aggregator.repaying import _claim_from
from aggregator.repaying import claim_intent_key as relayed_claim_key
from aggregator.servicing.intent_keys import current_attempt, default_intent_key
from aggregator.servicing.keeper import Keeper, claim_intent_key, liquidation_intent_key
from chain.transactions import Call
from store.chain import CONFIRMED, FAILED, REVERTED, SENT, IntentRecord, SqlChainStore
from store.db import Database
from tests.support.relay_fakes import FakeContract

pytestmark = pytest.mark.unit

CHAIN = 31337
AGGREGATOR = "0xFD471836031dc5108809D173A067e8486B9047A3"
MANAGER = "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318"
REFERENCE = payment_ref_hash("sim-bank", "pay-1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlChainStore]:
    database = Database(f"sqlite:///{tmp_path / 'chain.db'}")
    database.migrate()
    yield SqlChainStore(database.sessions)
    database.dispose()


async def _keep(store: SqlChainStore, key: str, status: str, data: str = "0x", to: str = AGGREGATOR) -> None:
    record = IntentRecord(key, CHAIN, "0x" + "0a" * 20, to, data, 0, None, "0x" + "11" * 32, status)
    _, created = await store.create_intent(record)
    assert created


def _recording(amount: int) -> str:
    """The data of the operator's ``recordOffchainRepayment`` of loan 9 for ``amount``."""
    call = Call.function(FakeContract("CreditAggregator", AGGREGATOR, {}), "recordOffchainRepayment", 9, amount,
                         REFERENCE)  # fmt: skip
    return "0x" + call.data.hex()


async def test_every_stored_attempt_is_read_by_its_number_past_a_gap(store: SqlChainStore) -> None:
    first = default_intent_key(CHAIN, AGGREGATOR, 9)
    for key in (f"{first}:3", f"{first}:12", default_intent_key(CHAIN, AGGREGATOR, 90), f"{first}:x"):
        await _keep(store, key, SENT)
    assert [(n, i.key) for n, i in await store.attempts(first)] == [(3, f"{first}:3"), (12, f"{first}:12")]
    # a key's "_" and "%" are no LIKE wildcards
    await _keep(store, "aXb:2", SENT)
    assert await store.attempts("a_b") == []
    assert await store.attempts("a%b") == []


async def test_a_payment_whose_attempts_start_past_the_first_is_not_sent_again(store: SqlChainStore) -> None:
    """Attempt 2 under the contract confirmed, no attempt 1: before, attempt 1 was the one to send, nothing sent."""
    first = record_intent_key(CHAIN, AGGREGATOR, 9, REFERENCE)
    await _keep(store, f"{first}:2", CONFIRMED, _recording(25_000_000))
    attempt = await _attempt(store, CHAIN, AGGREGATOR, 9, REFERENCE)
    assert (attempt.key, attempt.sent) == (f"{first}:2", 25_000_000)


async def test_after_the_last_failed_attempt_past_a_gap_the_next_is_sent(store: SqlChainStore) -> None:
    first = record_intent_key(CHAIN, AGGREGATOR, 9, REFERENCE)
    await _keep(store, f"{first}:2", FAILED, _recording(25_000_000))
    attempt = await _attempt(store, CHAIN, AGGREGATOR, 9, REFERENCE)
    assert (attempt.key, attempt.sent) == (f"{first}:3", None)  # attempt 2's key is failed for ever


async def test_a_mark_default_in_flight_past_a_gap_is_resumed_not_sent_again(store: SqlChainStore) -> None:
    key_of = partial(default_intent_key, CHAIN, AGGREGATOR, 9)
    await _keep(store, key_of(2), SENT)
    key, intent = await current_attempt(store, key_of)
    assert key == key_of(2)
    assert intent is not None
    reverted = partial(default_intent_key, CHAIN, AGGREGATOR, 10)
    await _keep(store, reverted(2), REVERTED)
    assert await current_attempt(store, reverted) == (reverted(3), None)
    assert await current_attempt(store, partial(default_intent_key, CHAIN, AGGREGATOR, 11)) == (
        default_intent_key(CHAIN, AGGREGATOR, 11),
        None,
    )


async def test_the_keepers_and_relayers_claims_and_liquidations_past_a_gap(store: SqlChainStore) -> None:
    await _keep(store, relayed_claim_key(CHAIN, MANAGER, 4, 2), SENT, to=MANAGER)
    await _keep(store, claim_intent_key(CHAIN, MANAGER, 5, 3), REVERTED, to=MANAGER)
    await _keep(store, liquidation_intent_key(CHAIN, MANAGER, 6, 2), SENT, to=MANAGER)
    keeper: Any = SimpleNamespace(
        chain_id=CHAIN, chain=SimpleNamespace(manager=to_checksum_address(MANAGER)),
        transactions=SimpleNamespace(store=store),
    )  # fmt: skip
    chain = cast(Any, SimpleNamespace(chain_id=CHAIN, transactions=SimpleNamespace(store=store)))

    # the relayer's claim of loan 4 in flight as attempt 2: the keeper leaves it, the relayer resumes it
    assert await Keeper._relayed_claim_in_flight(keeper, 4) == relayed_claim_key(CHAIN, MANAGER, 4, 2)
    assert await _claim_from(chain, MANAGER, 4) == 2
    # the keeper's claim of loan 5 reverted as attempt 3: the next is 4
    assert (await Keeper._claim_attempt(keeper, 5))[:2] == (claim_intent_key(CHAIN, MANAGER, 5, 4), None)
    # loan 6's second liquidation in flight: none may be sent
    in_flight = liquidation_intent_key(CHAIN, MANAGER, 6, 2)
    assert (await Keeper._liquidation_key(keeper, 6))[:2] == (in_flight, in_flight)
