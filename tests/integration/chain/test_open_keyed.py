"""``SqlChainStore.open_keyed`` on SQLite and PostgreSQL: the open intents whose key starts with a prefix — a relayer's
repayments still on their way (``aggregator.repaying.repayment_under_way``) — and none of another chain's, another
kind's, or one that ended."""

from __future__ import annotations

import pytest

from store.chain import (
    CONFIRMED,
    DROPPED,
    FAILED,
    MINED,
    OPEN_STATUSES,
    PENDING,
    REVERTED,
    SENT,
    IntentRecord,
    SqlChainStore,
)

pytestmark = pytest.mark.integration


def _intent(key: str, status: str) -> IntentRecord:
    return IntentRecord(key, 1, "0x" + "e0" * 20, "0x" + "a0" * 20, "0x1234", 0, None, "0x" + "00" * 32, status)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_the_open_intents_of_a_key_prefix_are_read_and_no_other(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    store: SqlChainStore = request.getfixturevalue("sqlite_store" if dialect == "sqlite" else "pg_store")
    open_ones = {f"repay:1:0x{n:064x}": status for n, status in enumerate((PENDING, SENT, MINED))}
    others = {f"repay:1:0x{n + 10:064x}": status for n, status in enumerate((CONFIRMED, REVERTED, FAILED, DROPPED))}
    others |= {f"repay:11:0x{1:064x}": SENT, f"claim-collateral:1:0x{2:064x}:5": SENT}  # another chain, kind
    for key, status in (open_ones | others).items():
        _, created = await store.create_intent(_intent(key, status))
        assert created
    found = await store.open_keyed("repay:1:")
    assert sorted(intent.key for intent in found) == sorted(open_ones)
    assert all(intent.status in OPEN_STATUSES and intent.data == "0x1234" for intent in found)
