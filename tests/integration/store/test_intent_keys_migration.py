"""Migration 0037 rekeys the intents stored under a loan's old keys (``markDefault:<chain id>:<loan id>`` …) to the
keys that name the contract each calls, from the intent's stored ``to_address``, with their signed attempts, on SQLite
and on PostgreSQL: an intent in flight at the upgrade is found under its new key (so resumed, never sent again); the
downgrade gives the old keys back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text

from aggregator.repaying import claim_intent_key as relayed_claim_key
from aggregator.servicing.defaults import cancel_intent_key, default_intent_key, hold_intent_key, release_intent_key
from aggregator.servicing.keeper import claim_intent_key, liquidation_intent_key, liquidation_intent_prefix
from store.chain import SqlChainStore
from store.db import Database
from tests.support.migrations import downgrade, upgrade

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AT = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN = 31337
AGGREGATOR = "0x610178dA211FEF7D417bC0e6FeD39F05609AD788"
MANAGER = "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318"
NEW_AGGREGATOR = "0xFD471836031dc5108809D173A067e8486B9047A3"
OPERATOR, KEEPER = "0x" + "0a" * 20, "0x" + "0b" * 20

#: key before 0037 → (to_address as stored, sender, status, key after 0037)
INTENTS = {
    "markDefault:31337:1": (AGGREGATOR, OPERATOR, "sent", default_intent_key(CHAIN, AGGREGATOR, 1)),
    "cancelUnfunded:31337:2": (AGGREGATOR, OPERATOR, "dropped", cancel_intent_key(CHAIN, AGGREGATOR, 2)),
    "holdLiquidation:31337:2": (MANAGER, OPERATOR, "confirmed", hold_intent_key(CHAIN, MANAGER, 2)),
    "releaseLiquidationHold:31337:2": (MANAGER, OPERATOR, "confirmed", release_intent_key(CHAIN, MANAGER, 2)),
    # stored lower-case: the new key names it checksummed all the same
    "liquidate:31337:1:n1": (MANAGER.lower(), KEEPER, "sent", liquidation_intent_key(CHAIN, MANAGER, 1, 1)),
    # a keeper's before liquidations were numbered: keyed by the block it read
    "liquidate:31337:3:812": (MANAGER, KEEPER, "mined", f"{liquidation_intent_prefix(CHAIN, MANAGER)}3:812"),
    "claimCollateral:31337:4": (MANAGER, KEEPER, "reverted", claim_intent_key(CHAIN, MANAGER, 4)),
    "claimCollateral:31337:4:2": (MANAGER, KEEPER, "confirmed", claim_intent_key(CHAIN, MANAGER, 4, 2)),
    "claim-collateral:31337:5": (MANAGER, OPERATOR, "confirmed", relayed_claim_key(CHAIN, MANAGER, 5)),
}
#: keys of no loan's kind: left alone
OTHERS = {
    "repay:31337:0x" + "ab" * 32: AGGREGATOR,
    "open-loan:q-1:1": AGGREGATOR,
    "impair:31337:1:55": AGGREGATOR,
    "offchain-repayment:31337:1:0x" + "cd" * 32: AGGREGATOR,
}


def _insert_intent(connection: Connection, key: str, to: str, sender: str, status: str, at: datetime) -> None:
    connection.execute(
        text(
            "INSERT INTO chain_intents (key, chain_id, sender, to_address, data, value, payload_hash, status, nonce, "
            "created_at, updated_at) VALUES (:key, :chain, :sender, :to, '0x', '0', :hash, :status, 7, :at, :at)"
        ),
        {"key": key, "chain": CHAIN, "sender": sender, "to": to, "hash": "0x" + "00" * 32, "status": status, "at": at},
    )


def _insert_attempt(connection: Connection, key: str, number: int) -> None:
    connection.execute(
        text(
            "INSERT INTO chain_tx_attempts (tx_hash, intent_key, nonce, max_fee_per_gas, max_priority_fee_per_gas, "
            "gas, raw, status, created_at) VALUES (:tx, :key, 7, '1', '1', 21000, '0x', 'sent', :at)"
        ),
        {"tx": "0x" + f"{number:064x}", "key": key, "at": AT},
    )


def _keys(database: Database) -> tuple[set[str], dict[str, str]]:
    """The intents' keys, and each attempt's intent key by its transaction."""
    with database.engine.connect() as connection:
        keys = set(connection.execute(text("SELECT key FROM chain_intents")).scalars())
        rows = connection.execute(text("SELECT tx_hash, intent_key FROM chain_tx_attempts"))
        signed = {str(tx_hash): str(key) for tx_hash, key in rows}
    return keys, signed


async def test_intents_stored_before_0037_are_found_under_the_keys_that_name_their_contract(
    fresh: Database,
) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0036_quote_borrower_status")
        for number, (key, (to, sender, status, _)) in enumerate(INTENTS.items()):
            _insert_intent(connection, key, to, sender, status, AT + timedelta(seconds=number))
            _insert_attempt(connection, key, number)
        for key, to in OTHERS.items():
            _insert_intent(connection, key, to, OPERATOR, "confirmed", AT)
    before = _keys(fresh)

    with fresh.engine.begin() as connection:  # 0038 rekeys the off-chain repayments' (its own test)
        upgrade(connection, "0037_intent_keys_name_contract")
    keys, signed = _keys(fresh)
    assert keys == {new for *_, new in INTENTS.values()} | set(OTHERS)
    assert signed == {tx: INTENTS[key][3] for tx, key in before[1].items()}  # each attempt follows its intent
    store = SqlChainStore(fresh.sessions)
    in_flight = await store.get_intent(default_intent_key(CHAIN, AGGREGATOR, 1))
    assert in_flight is not None
    assert (in_flight.status, in_flight.to_address) == ("sent", AGGREGATOR)  # resumed by the default job, not sent
    assert await store.get_intent("markDefault:31337:1") is None
    liquidating = [i.key for i in await store.open_intents(CHAIN, KEEPER)]  # the keeper's in-flight reading
    assert sorted(liquidating) == sorted(
        [liquidation_intent_key(CHAIN, MANAGER, 1, 1), f"{liquidation_intent_prefix(CHAIN, MANAGER)}3:812"]
    )

    # the new deployment's loan 1, marked in default after the upgrade: the downgrade cannot give it the old key
    with fresh.engine.begin() as connection:
        _insert_intent(connection, default_intent_key(CHAIN, NEW_AGGREGATOR, 1), NEW_AGGREGATOR, OPERATOR, "sent",
                       AT + timedelta(days=1))  # fmt: skip
        downgrade(connection, "0036_quote_borrower_status")
    keys, signed = _keys(fresh)
    assert keys == before[0] | {default_intent_key(CHAIN, NEW_AGGREGATOR, 1)}
    assert signed == before[1]
