"""The runtime view of the chains the aggregator uses: for each chain, its client (RPC failover, chain-id check),
deployment record, the EIP-712 domains of the CreditAggregator and the CreditScoringOracle, the relayer's
transaction manager (persisted intents, nonce allocator, fee bumps, resume after restart), and one transaction manager
per other role that sends (operator, guardian, keeper, audit anchor): a contract's role check is on ``msg.sender``, so
each role sends from its own account (DESIGN.md "Keys and devnet accounts")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from web3 import AsyncWeb3

from aggregator.ledger import LedgerChain, receipt_decoder
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.errors import ChainIdMismatch, ConfigurationError
from chain.events import EventDecoder
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, Signer
from chain.transactions import LifecycleSettings, TransactionManager
from contracts.typed_data import Domain
from store.chain import SqlChainStore

#: the roles besides the relayer that send transactions from the platform, each through its own manager
SENDING_ROLES = (Role.OPERATOR, Role.GUARDIAN, Role.KEEPER, Role.AUDIT_ANCHOR)


@dataclass
class ChainRuntime:
    client: ChainClient
    record: DeploymentRecord
    transactions: TransactionManager  # the relayer's
    senders: dict[Role, TransactionManager] = field(default_factory=dict)  # the other roles' (SENDING_ROLES)
    #: the gas limit this process's opens were sent with, per (aggregator, function selector, quote kind): the first
    #: accept's estimate with the relay's margin, raised whenever a later estimate says more (``aggregator.
    #: _accept_chain.simulate_open``)
    open_gas: dict[tuple[str, bytes, str], int] = field(default_factory=dict, repr=False, compare=False)
    _aggregator: Any = field(default=None, init=False, repr=False, compare=False)
    _receipts: tuple[EventDecoder, LedgerChain] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def config(self) -> ChainConfig:
        return self.client.config

    @property
    def w3(self) -> AsyncWeb3[Any]:
        return self.client.w3

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def relayer(self) -> str:
        return self.transactions.signer.address

    def sender(self, role: Role) -> TransactionManager:
        """The transaction manager of ``role``'s account on this chain (the relayer's is ``transactions``).

        Raises:
            ConfigurationError: the role has no key here (outside local runs a role's key is optional until a
                worker needs it: set ``CREDITMESH_<ROLE>_KEY``)."""
        if role == Role.RELAYER:
            return self.transactions
        try:
            return self.senders[role]
        except KeyError:
            raise ConfigurationError(
                f"no {role.value} account on {self.name}: set CREDITMESH_{role.value.upper()}_KEY"
            ) from None

    @property
    def operator(self) -> TransactionManager:
        """``OPERATOR_ROLE``: ``recordOffchainRepayment``, ``markDefault``."""
        return self.sender(Role.OPERATOR)

    @property
    def guardian(self) -> TransactionManager:
        """``GUARDIAN_ROLE``: pauses (only the timelock unpauses)."""
        return self.sender(Role.GUARDIAN)

    @property
    def keeper(self) -> TransactionManager:
        """The liquidation keeper's account (holds the debt asset, approves the CollateralManager)."""
        return self.sender(Role.KEEPER)

    @property
    def audit_anchor(self) -> TransactionManager:
        """``ANCHOR_ROLE`` on ``AuditAnchor``."""
        return self.sender(Role.AUDIT_ANCHOR)

    @property
    def aggregator_domain(self) -> Domain:
        return Domain(self.chain_id, self.record.address("CreditAggregator"))

    @property
    def oracle_domain(self) -> Domain:
        return Domain(self.chain_id, self.record.address("CreditScoringOracle"))

    def aggregator(self) -> Any:
        """The CreditAggregator contract, built once (building a web3 contract parses its ABI: a sixth of an API
        process's CPU in the accepts' profile when built per call)."""
        if self._aggregator is None:
            self._aggregator = self.w3.eth.contract(
                address=self.record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi
            )
        return self._aggregator

    def receipt_decoding(self) -> tuple[EventDecoder, LedgerChain]:
        """The decoder of this chain's receipts (its contracts' event ABIs) and its ledger chain, built once."""
        if self._receipts is None:
            self._receipts = (receipt_decoder(self.record, self.w3.codec), LedgerChain.from_record(self.record))
        return self._receipts

    async def close(self) -> None:
        for manager in self.senders.values():
            await manager.close()
        await self.transactions.close()
        await self.client.close()


def earlier_deployment(chain: ChainRuntime, contract: str) -> str | None:
    """Why a loan of the CreditAggregator at ``contract`` is neither read nor acted on through ``chain``, or None
    when ``contract`` is the chain's CreditAggregator. Contracts are not upgradeable: a new version is a new
    deployment on the chain, whose loans are numbered from 1 again, and the chain's deployment record names only the
    newest; a call for an earlier deployment's loan would reach the newest's loan of the same id."""
    current = chain.aggregator().address
    if contract.lower() == str(current).lower():
        return None
    return (
        f"it is a loan of an earlier deployment of the contracts on {chain.name} (CreditAggregator {contract}); "
        f"the platform services the one its deployment record names ({current})"
    )


async def connect_chain(
    config: ChainConfig,
    record: DeploymentRecord,
    relayer: Signer,
    store: SqlChainStore,
    role_signers: Mapping[Role, Signer] | None = None,
    *,
    intent_lease: float | None = None,
) -> ChainRuntime:
    """Connect (refusing a node whose chain id differs) and start the relayer's transaction manager and one per
    role in ``role_signers`` (each claims the open intents of its account that no live process owns: intents and
    nonces are per sending account; ``intent_lease`` seconds, 30 by default, before a dead owner's are taken)."""
    if record.chain_id != config.chain_id:
        raise ChainIdMismatch(f"deployments record of {config.name}", config.chain_id, record.chain_id)
    client = await ChainClient(config).connect()
    lease = {} if intent_lease is None else {"claim_after": intent_lease}
    settings = LifecycleSettings.for_chain(client, **lease)

    def manager(signer: Signer) -> TransactionManager:
        return TransactionManager(client, signer, store, settings=settings, revert_artifacts=REVERT_ARTIFACTS)

    transactions = await manager(relayer).start()
    senders: dict[Role, TransactionManager] = {}
    for role, signer in (role_signers or {}).items():
        if role == Role.RELAYER:
            continue
        senders[role] = await manager(signer).start()
    return ChainRuntime(client, record, transactions, senders)
