"""Loans of an earlier deployment of the contracts that are still open in the ledger: nobody services them.

Contracts are not upgradeable: a new version is a new CreditAggregator on the chain, and the chain's deployment
record names only the newest. The default job, the keeper, the indexer and reconciliation read only that one's loans
and events, so a loan of an earlier deployment still open at the switch is never announced past due, marked in
default, liquidated nor swept again, and its repayments are refused (``platform.earlier_deployment``;
docs/servicing.md, "A new deployment of the contracts on a chain"). Before (fixed 2026-11-29) nothing said so: the
loans went unserviced in silence.

So every process that starts with the chains' records (the API, ``creditmesh index``, ``keeper``, ``reconcile``)
counts them at start-up (``report_at_start``): one error per chain that has any, naming the chain, the count and the
earlier CreditAggregators, and the gauge ``creditmesh_unserviced_loans`` (by chain id). The admins' ``GET /health``
reads the figure again at each request (``UnservicedLoans.read``), the chain — and the page — ``degraded`` while
there are any, and sets the gauge to what it read."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from chain.deployment import DeploymentRecord

log = logging.getLogger(__name__)

UNSERVICED = Gauge(
    "creditmesh_unserviced_loans",
    "Loans open in the ledger of an earlier CreditAggregator than the chain's deployment record names: not serviced "
    "(not marked in default, liquidated nor indexed), by chain id",
    ["chain"],
)

#: how many open loans of each CreditAggregator other than the one given, on a chain: (chain id, CreditAggregator)
#: → {earlier CreditAggregator: open loans} (``store.loans.SqlLoanStore.open_loans_of_other_contracts``)
OpenLoansOfOtherContracts = Callable[[int, str], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class EarlierDeploymentLoans:
    """The open loans of earlier deployments on one chain, as the ledger shows them now."""

    chain: str  # the chain's name
    chain_id: int
    aggregator: str  # the CreditAggregator the chain's deployment record names (the one serviced); "" for none
    contracts: Mapping[str, int]  # each earlier CreditAggregator with open loans → how many

    @property
    def count(self) -> int:
        return sum(self.contracts.values())

    @property
    def status(self) -> str:
        return "degraded" if self.count else "ok"

    def as_json(self) -> dict[str, Any]:
        """``GET /health``'s ``earlier_deployment_loans`` entry of the chain."""
        return {"count": self.count, "contracts": dict(self.contracts), "status": self.status}

    def alert(self) -> str:
        """What the count means, for the operator's log."""
        earlier = ", ".join(f"{contract} ({loans})" for contract, loans in self.contracts.items())
        return (
            f"{self.count} loan(s) of an earlier deployment of the contracts on {self.chain} (chain {self.chain_id}) "
            f"are open in the ledger and NOT serviced: CreditAggregator {earlier}; the deployment record names "
            f"{self.aggregator or 'none'}. They are not announced past due, marked in default, liquidated nor "
            "swept, their events are not indexed, and their repayments and settlements are refused: wind them down "
            'on the earlier deployment (docs/servicing.md, "A new deployment of the contracts on a chain")'
        )


class UnservicedLoans:
    """Reads the open loans of earlier deployments of each chain from the ledger (``count``: one indexed query a
    chain) and keeps the gauge ``creditmesh_unserviced_loans`` at what it last read."""

    def __init__(self, count: OpenLoansOfOtherContracts) -> None:
        self._count = count

    def read(self, record: DeploymentRecord) -> EarlierDeploymentLoans:
        """The chain of ``record`` now (blocking: one query); the gauge set to its count. A record that names no
        CreditAggregator services no loan: every open loan of its chain counts."""
        deployed = record.contracts.get("CreditAggregator")
        aggregator = "" if deployed is None else str(deployed.address)
        found = EarlierDeploymentLoans(
            record.chain_name, record.chain_id, aggregator, dict(self._count(record.chain_id, aggregator))
        )
        UNSERVICED.labels(str(record.chain_id)).set(found.count)
        return found

    def report_at_start(self, records: Iterable[DeploymentRecord]) -> list[EarlierDeploymentLoans]:
        """Read each chain of ``records`` and log one error for each that has open loans of an earlier deployment;
        the chains read, in order."""
        found = [self.read(record) for record in records]
        for chain in found:
            if chain.count:
                log.error("%s", chain.alert())
        return found
