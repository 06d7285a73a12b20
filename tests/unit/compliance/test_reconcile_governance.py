"""The reconciler's rule for role changes and pauses, pure: matched by a governance action of ours (same
transaction and contract), by the deployer's wiring, or by the Timelock executing an operation; otherwise on-chain
but not recorded; an action recorded with no such event is recorded but not on-chain. The deployer's wiring ends
at the deployment's handover to the Timelock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from compliance.reconcile import ActionRecord, Category, ChainScope, Fact, ProposalRecord, Records, reconcile_chain

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


def test_a_proposal_is_matched_by_its_calls_and_transactions_not_its_state_alone() -> None:
    """A proposal whose recorded calls or transactions were rewritten afterwards was matched on its state alone:
    the Timelock's CallScheduled names each call (target, value, data by index), and each of its events the
    transaction the record claims."""
    operation = "0x" + "0e" * 32
    data = bytes.fromhex("a3c8e0ad" + "00" * 31 + "01")
    facts = [
        _fact(
            "Timelock",
            TIMELOCK,
            "CallScheduled",
            _tx(10),
            20,
            id=bytes.fromhex(operation[2:]),
            index=0,
            target=AGGREGATOR,
            value=0,
            data=data,
        ),
        _fact("Timelock", TIMELOCK, "CallExecuted", _tx(11), 21, id=bytes.fromhex(operation[2:])),
    ]
    call = {"target": AGGREGATOR, "value": 0, "data": "0x" + data.hex(), "decoded": "setGracePeriod(1)"}
    hashes = {"schedule": _tx(10), "execute": _tx(11)}
    ours = ProposalRecord(operation, "done", hashes, [call])
    assert reconcile_chain(SCOPE, facts, Records(proposals=[ours])).items == []

    rewritten = ProposalRecord(operation, "done", hashes, [call | {"data": "0x" + "00" * 36}])
    (item,) = reconcile_chain(SCOPE, facts, Records(proposals=[rewritten])).items
    assert (item.category, item.subject) == (Category.PROPOSAL_MISMATCH, operation)  # was filed as amount-mismatch
    assert "call 0: recorded" in item.detail
    other_tx = ProposalRecord(operation, "done", hashes | {"execute": _tx(99)}, [call])
    (item,) = reconcile_chain(SCOPE, facts, Records(proposals=[other_tx])).items
    assert f"execute transaction: recorded {_tx(99)}, on-chain {_tx(11)}" in item.detail


def test_the_deployers_role_changes_after_the_handover_are_reported() -> None:
    """The deployments record says the deployer handed over at block 50: its grant at block 14 is the wiring, its
    grant at block 60 is its key used outside governance (it was matched whatever the block)."""
    facts = [
        _fact(
            "CreditAggregator",
            AGGREGATOR,
            "RoleGranted",
            _tx(1),
            14,
            role=b"\x01" * 32,
            account=GUARDIAN,
            sender=DEPLOYER,
        ),
        _fact(
            "CreditAggregator",
            AGGREGATOR,
            "RoleGranted",
            _tx(2),
            60,
            role=b"\x02" * 32,
            account=GUARDIAN,
            sender=DEPLOYER,
        ),
        _fact(
            "CreditAggregator",
            AGGREGATOR,
            "RoleGranted",
            _tx(3),
            61,
            role=b"\x03" * 32,
            account=GUARDIAN,
            sender=TIMELOCK,
        ),
    ]
    result = reconcile_chain(replace(SCOPE, wiring_until=50), facts, Records())
    assert [(item.category, item.tx_hash) for item in result.items] == [(Category.ONCHAIN_NOT_RECORDED, _tx(2))]
    assert "after the deployment handed over to the Timelock (block 50)" in result.items[0].detail
    assert result.counts[Category.MATCHED.value] == 2  # the wiring and the Timelock's grant


def test_without_a_recorded_handover_the_deployers_own_renounce_bounds_its_wiring() -> None:
    """A deployments record written before the handover block was kept: the deployer's renounce of its admin role
    (block 20) in the run ends its wiring."""
    admin = b"\x00" * 32
    facts = [
        _fact("CreditAggregator", AGGREGATOR, "RoleGranted", _tx(1), 14, role=admin, account=TIMELOCK, sender=DEPLOYER),
        _fact("CreditAggregator", AGGREGATOR, "RoleRevoked", _tx(2), 20, role=admin, account=DEPLOYER, sender=DEPLOYER),
        _fact("CreditAggregator", AGGREGATOR, "RoleGranted", _tx(3), 30, role=admin, account=DEPLOYER, sender=TIMELOCK),
        _fact(
            "CreditAggregator",
            AGGREGATOR,
            "RoleGranted",
            _tx(4),
            31,
            role=b"\x02" * 32,
            account=GUARDIAN,
            sender=DEPLOYER,
        ),
    ]
    result = reconcile_chain(SCOPE, facts, Records())
    assert [(item.category, item.tx_hash) for item in result.items] == [(Category.ONCHAIN_NOT_RECORDED, _tx(4))]


def _scheduled(operation: str, tx: str, block: int, data: bytes) -> Fact:
    return _fact(
        "Timelock",
        TIMELOCK,
        "CallScheduled",
        tx,
        block,
        id=bytes.fromhex(operation[2:]),
        index=0,
        target=AGGREGATOR,
        value=0,
        data=data,
    )


def test_an_operation_cancelled_and_scheduled_again_is_matched_round_by_round() -> None:
    """The documented cancel-and-propose-again with the same salt: one id, two schedulings. Every CallScheduled was
    compared with the single recorded schedule transaction (and the first round's cancel stood beside the second
    scheduling), so the operation was reported as recorded otherwise. Each round's transactions are compared with
    that round's record; a transaction no round records is still reported."""
    operation = "0x" + "0d" * 32
    data = bytes.fromhex("a3c8e0ad" + "00" * 31 + "02")
    cancelled = _fact("Timelock", TIMELOCK, "Cancelled", _tx(21), 31, id=bytes.fromhex(operation[2:]))
    facts = [_scheduled(operation, _tx(20), 30, data), cancelled, _scheduled(operation, _tx(22), 32, data)]
    call = {"target": AGGREGATOR, "value": 0, "data": "0x" + data.hex(), "decoded": "setGracePeriod(2)"}
    rounds = {"schedule": _tx(22), "schedule.1": _tx(20), "cancel.1": _tx(21)}

    result = reconcile_chain(SCOPE, facts, Records(proposals=[ProposalRecord(operation, "pending", rounds, [call])]))

    assert result.items == []
    assert result.counts[Category.MATCHED.value] == 3
    # a record kept before rounds were (its hashes merged): its last round's transactions are compared
    merged = ProposalRecord(operation, "pending", {"schedule": _tx(22), "cancel": _tx(21)}, [call])
    assert reconcile_chain(SCOPE, facts, Records(proposals=[merged])).items == []
    # a real difference, in an earlier round or the last, is still reported
    for wrong, expected in (
        (rounds | {"schedule.1": _tx(99)}, f"schedule transaction of an earlier scheduling: recorded {_tx(99)}"),
        (rounds | {"cancel.1": _tx(98)}, f"cancel transaction of an earlier scheduling: recorded {_tx(98)}"),
        (rounds | {"schedule": _tx(97)}, f"schedule transaction: recorded {_tx(97)}, on-chain {_tx(22)}"),
        ({"schedule": _tx(20), "cancel": _tx(21)}, f"schedule transaction: recorded {_tx(20)}, on-chain {_tx(22)}"),
    ):
        record = ProposalRecord(operation, "pending", wrong, [call])
        (item,) = reconcile_chain(SCOPE, facts, Records(proposals=[record])).items
        assert (item.category, item.subject) == (Category.PROPOSAL_MISMATCH, operation)
        assert expected in item.detail
    other_call = ProposalRecord(operation, "pending", rounds, [call | {"data": "0x" + "00" * 36}])
    (item,) = reconcile_chain(SCOPE, facts, Records(proposals=[other_call])).items
    assert "call 0: recorded" in item.detail
