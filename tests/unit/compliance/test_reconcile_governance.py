"""The reconciler's rule for role changes and pauses, pure: matched by a governance action of ours (same
transaction and contract), by the deployer's wiring, or by the Timelock executing an operation; otherwise on-chain
but not recorded; an action recorded with no such event is recorded but not on-chain."""

from __future__ import annotations

from typing import Any

from compliance.reconcile import ActionRecord, Category, ChainScope, Fact, Records, reconcile_chain

DEPLOYER, TIMELOCK, GUARDIAN = "0x" + "d0" * 20, "0x" + "71" * 20, "0x" + "6a" * 20
MANAGER, AGGREGATOR = "0x" + "c1" * 20, "0x" + "a9" * 20
SCOPE = ChainScope("ethereum-local", 31337, 10, 100, DEPLOYER, TIMELOCK)


def _fact(contract: str, address: str, event: str, tx: str, block: int, **args: Any) -> Fact:
    return Fact("ethereum-local", contract, address, event, args, block, tx, 0)


def _tx(n: int) -> str:
    return f"0x{n:064x}"


def test_pauses_and_role_changes_are_matched_by_their_record_or_sender() -> None:
    operation = "0x" + "0f" * 32
    facts = [
        _fact("CreditAggregator", AGGREGATOR, "Paused", _tx(1), 11, account=GUARDIAN),  # our recorded pause
        _fact("CollateralManager", MANAGER, "LiquidationPauseChanged", _tx(2), 12, paused=True),  # outside
        _fact("CreditAggregator", AGGREGATOR, "Paused", _tx(3), 13, account=GUARDIAN),  # the guardian's key, outside
        _fact("CreditAggregator", AGGREGATOR, "RoleGranted", _tx(4), 14, role=b"\x01" * 32, sender=DEPLOYER),
        _fact("Timelock", TIMELOCK, "CallExecuted", _tx(5), 15, id=bytes.fromhex(operation[2:])),
        _fact("CollateralManager", MANAGER, "LiquidationPauseChanged", _tx(5), 15, paused=False),  # by the Timelock
    ]
    actions = [
        ActionRecord("pause", AGGREGATOR.upper().replace("0X", "0x"), GUARDIAN, _tx(1), 11),  # any case
        ActionRecord("pause", MANAGER, GUARDIAN, _tx(9), 20),  # never on-chain
        ActionRecord("pause", MANAGER, GUARDIAN, _tx(8), 200),  # outside the range: not judged
    ]
    result = reconcile_chain(SCOPE, facts, Records(actions=actions))
    found = sorted((item.category, item.what, item.tx_hash or item.record_ref) for item in result.items)
    assert found == sorted(
        [
            (Category.ONCHAIN_NOT_RECORDED, "LiquidationPauseChanged", _tx(2)),
            (Category.ONCHAIN_NOT_RECORDED, "Paused", _tx(3)),
            (Category.ONCHAIN_NOT_RECORDED, "CallExecuted", _tx(5)),  # no proposal of ours records the operation
            (Category.RECORDED_NOT_ONCHAIN, "pause", _tx(9)),
        ]
    )
    assert result.counts[Category.MATCHED.value] == 3  # our pause, the deployer's grant, the Timelock's unpause
