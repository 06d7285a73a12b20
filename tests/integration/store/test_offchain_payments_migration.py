"""Migration 0038 on SQLite and PostgreSQL: the lenders' payments kept before it name their loan's CreditAggregator
(from the loan's row), those sent as what the loan owed are kept as closing it (``closes_loan``), and they are
unique by (loan, reference), so that a new deployment's loan 9 takes a reference the earlier deployment's loan 9 was
paid under; the downgrade gives the old key back, and refuses while two deployments' loans of one number hold
payments of one reference. The operator's ``offchain-repayment`` intents and their signed attempts are rekeyed to
keys naming the CreditAggregator each was sent to, and back on the downgrade."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert, text

from aggregator.offchain_payments import _attempt, record_intent_key
from chain.transactions import Call
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.loans import loan_columns
from tests.support.migrations import downgrade, upgrade
from tests.support.relay_fakes import LOAN, FakeContract

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AT = datetime(2026, 1, 1, tzinfo=UTC)
EARLIER, NEWER = "0x610178dA211FEF7D417bC0e6FeD39F05609AD788", "0xFD471836031dc5108809D173A067e8486B9047A3"
#: loan 9 of the earlier deployment and of the newer one on the same chain
LOANS = (
    replace(LOAN, id="l-earlier", contract=EARLIER, onchain_loan_id=9, offer_digest="0x" + "01" * 32),
    replace(LOAN, id="l-newer", contract=NEWER, onchain_loan_id=9, offer_digest="0x" + "02" * 32),
)
REF_A, REF_B = "0x" + "aa" * 32, "0x" + "bb" * 32


def _insert_payment(
    connection: Connection, loan_id: str, reference: str, contract: str | None = None, recorded: str | None = None
) -> None:
    """A payment row of loan 9 as the schema of the revision at hand has it (``contract`` from 0038 on), sent as
    ``recorded`` when it is not the amount reported."""
    columns = "provider_id, payment_ref, reference, loan_id, chain_id, onchain_loan_id, amount, recorded_amount, "
    columns += "status, received_at, "
    values = "'sim-bank', :ref, :ref, :loan, :chain, 9, '25000000', :recorded, 'recorded', :at, "
    if contract is not None:
        columns, values = columns + "contract, ", values + ":contract, "
    connection.execute(
        text(f"INSERT INTO offchain_payments ({columns}updated_at) VALUES ({values}:at)"),  # noqa: S608 (constants)
        {
            "ref": reference,
            "loan": loan_id,
            "chain": LOAN.chain_id,
            "at": AT,
            "contract": contract,
            "recorded": recorded,
        },
    )


def _payments(database: Database) -> set[tuple[str, str, str, bool]]:
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT loan_id, reference, contract, closes_loan FROM offchain_payments"))
        return {(str(loan), str(reference), str(contract), bool(closes)) for loan, reference, contract, closes in rows}


def test_payments_kept_before_0038_name_their_loans_contract_and_are_unique_by_loan(fresh: Database) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0037_intent_keys_name_contract")
        for loan in LOANS:
            connection.execute(insert(LoanRow).values(**loan_columns(loan)))
        _insert_payment(connection, "l-earlier", REF_A)
        _insert_payment(connection, "l-newer", REF_B, recorded="25100000")  # sent as what the loan owed: a payoff

    fresh.migrate()
    assert _payments(fresh) == {("l-earlier", REF_A, EARLIER, False), ("l-newer", REF_B, NEWER, True)}
    with fresh.engine.begin() as connection:  # the newer loan 9 paid under the reference of the earlier's payment
        _insert_payment(connection, "l-newer", REF_A, NEWER)
    with pytest.raises(Exception, match=r"(?i)unique"), fresh.engine.begin() as connection:
        _insert_payment(connection, "l-newer", REF_A, NEWER)  # one payment per (loan, reference)

    with pytest.raises(RuntimeError, match="cannot downgrade below 0038"), fresh.engine.begin() as connection:
        downgrade(connection, "0037_intent_keys_name_contract")
    with fresh.engine.begin() as connection:
        connection.execute(text("DELETE FROM offchain_payments WHERE loan_id = 'l-newer' AND reference = :ref"),
                           {"ref": REF_A})  # fmt: skip
        downgrade(connection, "0037_intent_keys_name_contract")
    with pytest.raises(Exception, match=r"(?i)unique"), fresh.engine.begin() as connection:
        _insert_payment(connection, "l-newer", REF_A)  # the old key: (chain, loan number, reference)


#: the operator's off-chain repayment intents before 0038 → (to_address as stored, status, key after 0038)
INTENTS = {
    f"offchain-repayment:31337:9:{REF_A}": (
        EARLIER,
        "confirmed",
        record_intent_key(31337, EARLIER, 9, bytes(32 * [0xAA])),
    ),
    # stored lower-case, its second attempt in flight at the upgrade: found under its new key and resumed, not resent
    f"offchain-repayment:31337:9:{REF_B}:2": (
        NEWER.lower(),
        "sent",
        record_intent_key(31337, NEWER, 9, bytes(32 * [0xBB]), 2),
    ),
}
OTHER = "markDefault:31337:" + EARLIER + ":9"  # of no off-chain repayment: left alone


def _insert_intent(connection: Connection, key: str, to: str, status: str, at: datetime, data: str = "0x") -> None:
    connection.execute(
        text(
            "INSERT INTO chain_intents (key, chain_id, sender, to_address, data, value, payload_hash, status, nonce, "
            "created_at, updated_at) VALUES (:key, 31337, :sender, :to, :data, '0', :hash, :status, 7, :at, :at)"
        ),
        {"key": key, "sender": "0x" + "0a" * 20, "to": to, "data": data, "hash": "0x" + "11" * 32, "status": status,
         "at": at},
    )  # fmt: skip
    connection.execute(
        text(
            "INSERT INTO chain_tx_attempts (tx_hash, intent_key, nonce, max_fee_per_gas, max_priority_fee_per_gas, "
            "gas, raw, status, created_at) VALUES (:tx, :key, 7, '1', '1', 21000, '0x', 'sent', :at)"
        ),
        {"tx": "0x" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex * 2, "key": key, "at": at},
    )


def _recording(reference: bytes, amount: int) -> str:
    """The data of the operator's ``recordOffchainRepayment`` of loan 9."""
    aggregator = FakeContract("CreditAggregator", NEWER, {})
    return "0x" + Call.function(aggregator, "recordOffchainRepayment", 9, amount, reference).data.hex()


def _keys(database: Database) -> tuple[set[str], set[str]]:
    """The intents' keys, and the intent keys of the signed attempts."""
    with database.engine.connect() as connection:
        keys = set(connection.execute(text("SELECT key FROM chain_intents")).scalars())
        signed = set(connection.execute(text("SELECT intent_key FROM chain_tx_attempts")).scalars())
    return keys, signed


async def test_off_chain_repayment_intents_stored_before_0038_are_found_under_keys_naming_their_contract(
    fresh: Database,
) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0037_intent_keys_name_contract")
        for number, (key, (to, status, _)) in enumerate(INTENTS.items()):
            _insert_intent(connection, key, to, status, AT + timedelta(seconds=number))
        _insert_intent(connection, OTHER, EARLIER, "confirmed", AT)

    fresh.migrate()
    renamed = {new for *_, new in INTENTS.values()}
    assert _keys(fresh) == (renamed | {OTHER}, renamed | {OTHER})
    in_flight = await SqlChainStore(fresh.sessions).get_intent(
        record_intent_key(31337, NEWER, 9, bytes(32 * [0xBB]), 2)
    )
    assert in_flight is not None
    assert in_flight.status == "sent"

    # the new deployment's loan 9 paid under REF_A after the upgrade: the downgrade cannot give it the old key
    newer_a = record_intent_key(31337, NEWER, 9, bytes(32 * [0xAA]))
    with fresh.engine.begin() as connection:
        _insert_intent(connection, newer_a, NEWER, "confirmed", AT + timedelta(days=1))
        downgrade(connection, "0037_intent_keys_name_contract")
    assert _keys(fresh) == (set(INTENTS) | {OTHER, newer_a}, set(INTENTS) | {OTHER, newer_a})


async def test_a_payments_attempt_the_old_code_sent_to_the_new_contract_is_found_after_0038(fresh: Database) -> None:
    """Before 0038 the earlier deployment's loan 9's payment under REF_A, its first attempt not taken, was sent again
    as attempt 2 to the CreditAggregator of the day (the newer one, whose loan 9 it paid); 0038 rekeys each attempt by
    the contract it was sent to, so the newer contract holds attempt 2 and no attempt 1. The newer loan's payment of
    that reference read the missing attempt 1 as nothing sent, and its repeated webhook sent it again: credited twice.
    The attempt to follow is the one stored, with the amount it was sent with."""
    reference = bytes(32 * [0xAA])
    sent = _recording(reference, 25_000_000)
    with fresh.engine.begin() as connection:
        upgrade(connection, "0037_intent_keys_name_contract")
        for loan in LOANS:
            connection.execute(insert(LoanRow).values(**loan_columns(loan)))
        _insert_payment(connection, "l-earlier", REF_A)  # the one row the old code kept, settled by attempt 2
        _insert_intent(connection, f"offchain-repayment:31337:9:{REF_A}", EARLIER, "failed", AT, sent)
        _insert_intent(connection, f"offchain-repayment:31337:9:{REF_A}:2", NEWER, "confirmed", AT + timedelta(1), sent)

    fresh.migrate()
    attempt = await _attempt(SqlChainStore(fresh.sessions), 31337, NEWER, 9, reference)
    assert (attempt.key, attempt.sent) == (record_intent_key(31337, NEWER, 9, reference, 2), 25_000_000)
    earlier = await _attempt(SqlChainStore(fresh.sessions), 31337, EARLIER, 9, reference)
    assert (earlier.key, earlier.sent) == (record_intent_key(31337, EARLIER, 9, reference, 2), None)
