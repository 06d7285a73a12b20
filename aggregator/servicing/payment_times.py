"""When a loan's repayments were made, by the chain's clock: the ledger keeps each ``LoanRepaid`` fact's block, not
its time, so the times are read from the node — ``eth_getBlockByHash`` of the facts' blocks, in JSON-RPC batches of
at most ``BATCH`` (a node's ``--rpc.batch-request-limit``) — and kept per block hash (a hash names one block, whose
time never changes). Read only for the loans whose judgement they can change (``delinquency.may_be_paid_as_disclosed``).

A lender's payment the operator recorded (``recordOffchainRepayment``) is dated by what the closing rule reads
(``aggregator.offchain_payments``): when the lender said it was made (its ``payment.received``'s ``occurred_at``,
else when it was accepted), but never later than its record's block — a payment cannot have been made after the
chain recorded it (an ``occurred_at`` in the lender's local time sent without an offset is read as UTC, hours late).
The closing rule decides before the record exists and takes a later ``occurred_at`` as said: the two differ only for
a date after the record, and its one day's allowance covers a few hours' offset.
Until 2026-11-29 it was dated by its block alone: a payment made on its due date and reported after midnight UTC
was a day late to servicing — the loan announced past due and marked in default after the grace period — while the
closing rule had judged it on time.
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
    (base units); ``said_at``: when the lender said it was made (unix seconds), for a lender's payment the operator
    recorded (None: paid on-chain)."""

    block_hash: str
    amount: int
    said_at: int | None = None


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
    """Each loan's ``repayments`` (by loan id) with their dates: what ``delinquency.paid_as_disclosed`` judges by —
    its block's time, or for a lender's payment when the lender said it was made, if earlier (the module docstring)."""
    times = await block_times(client, (r.block_hash for rows in repayments.values() for r in rows))
    return {
        loan_id: tuple(Payment(made_at(r, times[r.block_hash]), r.amount) for r in rows if r.block_hash in times)
        for loan_id, rows in repayments.items()
    }


def made_at(repayment: RecordedRepayment, block_time: int) -> int:
    """When ``repayment`` was made: its block's time (``block_time``), or for a lender's payment its lender's date,
    never after the block."""
    return block_time if repayment.said_at is None else min(repayment.said_at, block_time)
