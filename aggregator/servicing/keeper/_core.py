"""What every part of the keeper shares: its chain, contracts, accounts and stores, and one send — simulated from the
keeper, sent under its intent, confirmed, its receipt applied to the ledger."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from aggregator.indexer import default_holder
from aggregator.ledger import LedgerChain
from aggregator.receipts import apply_receipt
from aggregator.servicing.keeper._report import RoundReport
from aggregator.servicing.keeper._settings import KeeperSettings
from aggregator.servicing.repository import OpenLoan, ServicingStore
from aggregator.servicing.sender_funds import SenderFunds
from aggregator.servicing.unserviceable import Unserviceable
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.deployment import DeploymentRecord
from chain.errors import ChainError, GasEstimationFailed, TransactionReverted
from chain.relay import revert_of
from chain.signers import Role
from chain.transactions import Call, TransactionManager
from store.db import Database
from store.leases import LeaseStore
from store.servicing import SqlServicingStore

#: the keeper's one logger, whichever of its modules logs (operators filter on this name)
log = logging.getLogger("aggregator.servicing.keeper")


@dataclass(frozen=True, slots=True)
class _Chain:
    """The contracts and accounts one keeper uses."""

    aggregator: str
    manager: str
    keeper: str


class _Core:
    """The keeper's state, and the helpers every part of it sends and reports through."""

    def __init__(
        self,
        client: ChainClient,
        record: DeploymentRecord,
        database: Database,
        transactions: TransactionManager,
        *,
        store: ServicingStore | None = None,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        settings: KeeperSettings = KeeperSettings(),  # noqa: B008 (frozen: one default shared is safe)
    ) -> None:
        self.client, self.record, self.database = client, record, database
        self.store: ServicingStore = store or SqlServicingStore(database)
        self.transactions = transactions
        self.leases: LeaseStore = leases or self.store.leases
        self.holder = holder or default_holder()
        self.settings = settings
        self.ledger_chain = LedgerChain.from_record(record)
        self.chain = _Chain(
            record.address("CreditAggregator"), record.address("CollateralManager"), transactions.signer.address
        )
        self._manager_abi: Any = self.client.w3.eth.contract(
            address=to_checksum_address(self.chain.manager), abi=load_artifact("CollateralManager").abi
        )
        self._aggregator_abi: Any = self.client.w3.eth.contract(
            address=to_checksum_address(self.chain.aggregator), abi=load_artifact("CreditAggregator").abi
        )
        self._claim_refusals: dict[int, str] = {}  # loan ref → why its claim was last refused (logged once)
        self.unserviceable = Unserviceable(log, "keeper", self.ledger_chain.chain_id)
        self.funds = SenderFunds(
            client, transactions, settings.first_pause, settings.most_pause, role=Role.KEEPER, job="keeper",
            sends="liquidations, impairments and collateral claims",
        )  # fmt: skip

    @property
    def chain_id(self) -> int:
        return self.ledger_chain.chain_id

    def _unserviceable(self, report: RoundReport, loan: OpenLoan, reason: str) -> None:
        """Skip ``loan``, which the round cannot read or price: said once (not every round), counted."""
        report.unserviceable[loan.id] = reason
        if loan.loan_ref:
            report.skipped[loan.loan_ref] = reason
        self.unserviceable.skip(f"{loan.id} (on-chain id {loan.loan_ref or 'unknown'})", reason)

    def _skip(self, report: RoundReport, ref: int, reason: str) -> None:
        report.skipped[ref] = reason
        log.warning("keeper on chain %s: loan %s not liquidated: %s", self.chain_id, ref, reason)

    async def _simulate(self, call: Call) -> str | None:
        """``eth_call`` of ``call`` from the keeper at the head block: None when it succeeds, else the revert."""
        assert call.to is not None
        request = {"from": self.chain.keeper, "to": call.to, "data": "0x" + call.data.hex()}
        return await revert_of(self.client.provider, request)

    async def _send(self, key: str, call: Call) -> str:
        """Send ``call`` under intent ``key`` (once per key), wait for it, and apply its events to the ledger."""
        try:
            await self.transactions.submit(key, call)
        except GasEstimationFailed as err:
            raise ChainError(f"{key}: {err}") from err
        return await self._confirm(key)

    async def _confirm(self, key: str) -> str:
        """Wait for intent ``key``'s receipt (at most ``receipt_timeout``) and apply its events to the ledger."""
        try:
            receipt = await self.transactions.wait(key, within=self.settings.receipt_timeout)
        except TransactionReverted as err:
            raise ChainError(f"{key}: {err}") from err
        await apply_receipt(self.database, self.client.w3, self.record, self.chain_id, receipt.tx_hash)
        return receipt.tx_hash
