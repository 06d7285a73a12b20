"""Anchoring the audit log's head on-chain, and reading the anchors back.

The ``AuditAnchor`` contract (one per chain, in each deployments record under ``AuditAnchor``) emits
``Anchored(seq, head, anchoredAt)``; only the audit anchor key (``ANCHOR_ROLE``) may call ``anchor``. ``anchor_head``
sends the head through that key's transaction manager, once per (chain, sequence number) — the intent key makes a
retry or a second process resume the same transaction instead of sending another — and skips a chain whose latest
anchor is already at or past the head. ``read_anchors`` re-reads every ``Anchored`` event with ``eth_getLogs``, which
``compliance.audit.verify`` checks the log against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import ChainError
from chain.logs import fetch_logs
from chain.transactions import Call, TransactionManager
from compliance.audit import Anchor
from compliance.errors import ComplianceError

log = logging.getLogger(__name__)

AUDIT_ANCHOR_KEY = "AuditAnchor"  # the deployments record's name of the contract (``contracts.deploy``)


class AnchorError(ComplianceError):
    """The audit log's head could not be anchored (no AuditAnchor deployed, the transaction reverted)."""


@dataclass(frozen=True, slots=True)
class AnchorContract:
    """Where one chain's AuditAnchor is: its address and the block it was deployed in (reads start there)."""

    chain_name: str
    address: ChecksumAddress
    deployed_block: int

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> AnchorContract:
        if AUDIT_ANCHOR_KEY not in record.contracts:
            raise AnchorError(f"{record.chain_name}: no AuditAnchor in the deployments record; deploy it first")
        deployed = record.contracts[AUDIT_ANCHOR_KEY]
        return cls(record.chain_name, deployed.address, deployed.block)


def _abi() -> list[dict[str, Any]]:
    return list(load_artifact("AuditAnchor").abi)


async def read_anchors(client: ChainClient, contract: AnchorContract, to_block: int | None = None) -> list[Anchor]:
    """Every ``Anchored`` event of ``contract`` from its deployment on, in chain order."""
    last = int(await client.rpc("eth_blockNumber"), 16) if to_block is None else to_block
    logs = await fetch_logs(
        client, contract.address, _abi(), "Anchored", from_block=contract.deployed_block, to_block=last
    )
    return [
        Anchor(
            contract.chain_name,
            int(entry.args["seq"]),
            "0x" + bytes(entry.args["head"]).hex(),
            entry.tx_hash,
            entry.block_number,
        )
        for entry in logs
    ]


async def latest_anchor(client: ChainClient, contract: AnchorContract) -> int:
    """The contract's latest anchored sequence number (0 before the first)."""
    instance = client.w3.eth.contract(address=contract.address, abi=_abi())
    return int(await instance.functions.latestSeq().call())


async def anchor_head(
    transactions: TransactionManager, contract: AnchorContract, head: tuple[int, str], *, within: float = 120.0
) -> str | None:
    """Anchor ``head`` (sequence number, hash) on ``contract``'s chain; the transaction hash, or None when the chain
    already holds an anchor at or past it."""
    seq, head_hash = head
    client = transactions.client
    if await latest_anchor(client, contract) >= seq:
        return None
    instance = client.w3.eth.contract(address=contract.address, abi=_abi())
    call = Call.function(instance, "anchor", seq, bytes.fromhex(head_hash.removeprefix("0x")))
    key = f"audit-anchor:{client.config.chain_id}:{contract.address}:{seq}"
    try:
        receipt = await transactions.submit_and_wait(key, call, within=within)
    except ChainError as err:
        raise AnchorError(f"{contract.chain_name}: anchoring entry {seq} failed: {err}") from err
    if receipt.status != "confirmed":
        raise AnchorError(f"{contract.chain_name}: anchoring entry {seq} ended {receipt.status} ({receipt.tx_hash})")
    log.info("anchored audit entry %s on %s: %s", seq, contract.chain_name, receipt.tx_hash)
    return receipt.tx_hash
