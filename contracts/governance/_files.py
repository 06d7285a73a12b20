"""The files governance passes between people: a proposal (each chain's Timelock operation and the SafeTx that
schedules or cancels it), written by ``propose`` / ``cancel --via safe`` and read by ``sign``, ``submit`` and
``execute --proposal``; and an owner's signatures of those SafeTxs, written by ``sign`` and read by ``submit``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress

from chain.safe import OwnerSignature, SafeTransaction
from chain.timelock import TimelockCall, TimelockOperation
from contracts.governance._errors import GovernanceError


@dataclass
class ChainProposal:
    """One chain's part of a proposal: the Timelock operation, and the SafeTx that schedules it (Safe path)."""

    chain_name: str
    chain_id: int
    timelock: ChecksumAddress
    operation: TimelockOperation
    delay: int
    calls: list[str]
    safe_tx: SafeTransaction | None = None
    tx_hashes: dict[str, str] = field(default_factory=dict)
    action: str = "schedule"  # what the SafeTx does to the operation: schedule it, or cancel it

    @property
    def operation_id(self) -> str:
        return "0x" + self.operation.operation_id.hex()

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain_name,
            "chainId": self.chain_id,
            "timelock": self.timelock,
            "operationId": self.operation_id,
            "delay": self.delay,
            "salt": "0x" + self.operation.salt.hex(),
            "predecessor": "0x" + self.operation.predecessor.hex(),
            "batch": self.operation.batch,
            "calls": [
                {"target": c.target, "value": c.value, "data": "0x" + c.data.hex(), "decoded": d}
                for c, d in zip(self.operation.calls, self.calls, strict=True)
            ],
            "safeTx": None if self.safe_tx is None else self.safe_tx.to_json(),
            "action": self.action,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ChainProposal:
        operation = TimelockOperation(
            calls=tuple(
                TimelockCall(target=c["target"], data=bytes.fromhex(c["data"][2:]), value=int(c["value"]))
                for c in raw["calls"]
            ),
            salt=bytes.fromhex(raw["salt"][2:]),
            predecessor=bytes.fromhex(raw["predecessor"][2:]),
            as_batch=bool(raw["batch"]),
        )
        return cls(
            chain_name=raw["chain"],
            chain_id=int(raw["chainId"]),
            timelock=raw["timelock"],
            operation=operation,
            delay=int(raw["delay"]),
            calls=[c["decoded"] for c in raw["calls"]],
            safe_tx=None if raw.get("safeTx") is None else SafeTransaction.from_json(raw["safeTx"]),
            action=str(raw.get("action", "schedule")),
        )


def save_proposals(path: Path, proposals: list[ChainProposal]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"proposals": [p.to_json() for p in proposals]}, indent=2) + "\n")


def load_proposals(path: Path) -> list[ChainProposal]:
    try:
        return [ChainProposal.from_json(raw) for raw in json.loads(path.read_text())["proposals"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # also a file of another shape
        raise GovernanceError(f"cannot read proposal file {path}: {err}") from err


def save_signatures(path: Path, signatures: list[OwnerSignature]) -> None:
    document = [
        {
            "owner": s.owner,
            "signature": "0x" + s.signature.hex(),
            "safeTxHash": "0x" + s.transaction.safe_tx_hash.hex(),
            "transaction": s.transaction.to_json(),
        }
        for s in signatures
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"signatures": document}, indent=2) + "\n")


def load_signatures(path: Path) -> list[OwnerSignature]:
    try:
        raw = json.loads(path.read_text())["signatures"]
        return [
            OwnerSignature(
                transaction=SafeTransaction.from_json(item["transaction"]),
                owner=item["owner"],
                signature=bytes.fromhex(item["signature"][2:]),
            )
            for item in raw
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # also a file of another shape
        raise GovernanceError(f"cannot read signature file {path}: {err}") from err
