"""When a loan's repayments were made, by the chain's clock: the ledger keeps each ``LoanRepaid`` fact's block, not
its time, so the times are read from the node — ``eth_getBlockByHash`` of the facts' blocks, in JSON-RPC batches of
at most ``BATCH`` (a node's ``--rpc.batch-request-limit``) — and kept per block hash (a hash names one block, whose
time never changes). Read only for the loans whose judgement they can change (``delinquency.may_be_paid_as_disclosed``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.servicing.delinquency import Payment
from chain.client import ChainClient

BATCH = 100
_KEPT = 65_536  # block times kept per process
_times: OrderedDict[str, int] = OrderedDict()


@dataclass(frozen=True, slots=True)
class RecordedRepayment:
    """A repayment the ledger recorded: the block of its ``LoanRepaid`` fact and all it paid, interest and principal
    (base units)."""

    block_hash: str
    amount: int


async def block_times(client: ChainClient, hashes: Iterable[str]) -> dict[str, int]:
    """Each block's timestamp (seconds), by hash. A block the node does not have (a reorg removed it and the ledger
    has not rebuilt the loan yet) is left out, and its repayment not counted.

    Raises:
        ChainError: the node refused a batch or did not answer.
    """
    wanted = list(dict.fromkeys(hashes))
    missing = [block for block in wanted if block not in _times]
    for start in range(0, len(missing), BATCH):
        chunk = missing[start : start + BATCH]
        headers = await client.batch(*[("eth_getBlockByHash", [block, False]) for block in chunk])
        for block, header in zip(chunk, headers, strict=True):
            if header is not None:
                _times[block] = int(header["timestamp"], 16)
                if len(_times) > _KEPT:
                    _times.popitem(last=False)
    return {block: _times[block] for block in wanted if block in _times}


async def dated(
    client: ChainClient, repayments: Mapping[str, Sequence[RecordedRepayment]]
) -> dict[str, tuple[Payment, ...]]:
    """Each loan's ``repayments`` (by loan id) with their blocks' times: what ``delinquency.paid_as_disclosed``
    judges by."""
    times = await block_times(client, (r.block_hash for rows in repayments.values() for r in rows))
    return {
        loan_id: tuple(Payment(times[r.block_hash], r.amount) for r in rows if r.block_hash in times)
        for loan_id, rows in repayments.items()
    }
