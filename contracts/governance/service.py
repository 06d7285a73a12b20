"""Governance of the deployed contract set, chain by chain: propose through the Timelock (directly from a proposer
key, or as a Safe transaction its owners sign off-line and one of them submits), list, execute, cancel, and the
guardian's immediate pause. Every proposal is simulated as the Timelock first (``eth_call``), on every chain,
before any transaction is sent, and persisted (``store.governance``) as it moves; each call the guardian makes
directly is persisted as a governance action (who, chain, contract, transaction, reason) once mined.

Layout: private modules behind these public names — ``_errors`` (the error tree), ``_chains`` (one chain's deployed
set), ``_simulation`` (each call made as the Timelock first; dry runs), ``_files`` (proposal and signature files),
``_safe_checks`` (the SafeTx a proposal file needs, rebuilt and compared before signing or sending); preparing,
signing and the ``Governance`` that sends and records here."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception
from web3.types import RPCEndpoint, Wei

from chain.deployment import DeploymentRecord
from chain.errors import ChainError, GasEstimationFailed, TransactionReverted
from chain.safe import (
    OwnerSignature,
    SafeTransaction,
    exec_transaction_call,
    pack_signatures,
    read_safe,
    sign_safe_transaction,
)
from chain.sending import SyncSender
from chain.signers import DEVNET_CHAIN_IDS, Signer
from chain.signers import production_guard as guard
from chain.timelock import (
    OperationState,
    ScheduledOperation,
    TimelockOperation,
    cancel_call,
    execute_call,
    operation_state,
    read_operations,
    schedule_call,
)
from chain.transactions import Call, Receipt
from contracts.governance._chains import GovernedChain
from contracts.governance._errors import (
    GovernanceError,
    OperationNotFound,
    OperationNotReady,
    ProposalRefused,
    SafeTransactionMismatch,
)
from contracts.governance._files import ChainProposal, load_proposals, load_signatures, save_proposals, save_signatures
from contracts.governance._safe_checks import (
    SAFE_KEY,
    check_safe_transaction,
    describe_calls,
    expected_safe_transaction,
)
from contracts.governance._simulation import (
    REVERT_ARTIFACTS,
    DryRunLine,
    dry_run,
    fork_dry_run,
    revert_reason,
    simulate,
)
from contracts.governance.catalog import PAUSABLE, CatalogError, GovernedCall, keys_matching
from store.db import Database
from store.governance import ActionRecord, ProposalRecord, SqlActionRepository, SqlProposalRepository

__all__ = [
    "CHAIN_FAILURES",
    "REVERT_ARTIFACTS",
    "SAFE_KEY",
    "CallsFor",
    "ChainProposal",
    "DryRunLine",
    "Execution",
    "ExecutionStatus",
    "Governance",
    "GovernanceError",
    "GovernedChain",
    "OperationNotFound",
    "OperationNotReady",
    "PauseOutcome",
    "ProposalRefused",
    "SafeTransactionMismatch",
    "check_safe_transaction",
    "describe_calls",
    "dry_run",
    "expected_safe_transaction",
    "failure",
    "fork_dry_run",
    "load_proposals",
    "load_signatures",
    "prepare",
    "production_guard",
    "save_proposals",
    "save_signatures",
    "sign_proposals",
    "simulate",
]

log = logging.getLogger(__name__)


def production_guard(addresses: Iterable[str]) -> None:
    """``chain.signers.production_guard`` for the accounts a governance command signs with or gives a role to:
    with ``CREDITMESH_ENVIRONMENT=production`` none may be one of anvil's public devnet accounts."""
    guard(role_holders={f"governance account #{n}": address for n, address in enumerate(addresses, 1)})


CallsFor = Callable[[GovernedChain], list[GovernedCall]]


def prepare(
    chains: list[GovernedChain], calls_for: CallsFor, *, via_safe: bool, salt: bytes | None = None
) -> list[ChainProposal]:
    """Simulate the proposal on every chain (nothing is sent if one refuses), then build each chain's operation —
    and, on the Safe path, the SafeTx that schedules it at the Safe's next nonce."""
    encoded = [(chain, simulate(chain, calls_for(chain))) for chain in chains]
    salt = salt or secrets.token_bytes(32)
    proposals = []
    for chain, calls in encoded:
        operation = TimelockOperation(tuple(calls), salt=salt)
        delay = int(chain.timelock.functions.getMinDelay().call())
        proposal = ChainProposal(
            chain_name=chain.name,
            chain_id=chain.chain_id,
            timelock=chain.record.address("Timelock"),
            operation=operation,
            delay=delay,
            calls=[chain.describe(call) for call in calls],
        )
        if via_safe:
            safe = chain.safe
            schedule = schedule_call(proposal.timelock, operation, delay)
            proposal.safe_tx = SafeTransaction(
                safe=safe.address,
                chain_id=chain.chain_id,
                to=proposal.timelock,
                data=schedule.data,
                nonce=read_safe(safe).nonce,
            )
        proposals.append(proposal)
    return proposals


def sign_proposals(
    proposals: list[ChainProposal], owner: Signer, records: Mapping[str, DeploymentRecord] | None = None
) -> list[OwnerSignature]:
    """One owner's signatures of every chain's SafeTx (off-line), each checked first (``check_safe_transaction``,
    against the chain's deployments record in ``records`` when there is one): nothing is signed if one differs."""
    production_guard([owner.address])
    checked = [check_safe_transaction(p, (records or {}).get(p.chain_name)) for p in proposals]
    return [sign_safe_transaction(transaction, owner) for transaction in checked]


@dataclass
class PauseOutcome:
    """The guardian's pause on one chain: each pause sent (what, tx hash) and each refused (what, why); neither when
    everything was already paused."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class ExecutionStatus(StrEnum):
    """What ``execute`` did on one chain."""

    EXECUTED = "executed"
    NOT_FOUND = "not found"  # never scheduled on this chain's Timelock
    NOT_READY = "not ready"  # pending (its delay not over), done or cancelled: nothing sent
    FAILED = "failed"  # sent and reverted, or the RPC failed


@dataclass(frozen=True, slots=True)
class Execution:
    """One chain's part of ``execute``: its status and the execute transaction, or why there is none."""

    chain: str
    operation_id: str
    status: ExecutionStatus
    detail: str


# What one chain's part of a command may fail with, that must not stop the other chains' in an emergency: a refusal
# of ours or the chain layer's, or an RPC that stops answering (requests' errors are OSErrors) or answers nonsense.
CHAIN_FAILURES = (GovernanceError, CatalogError, ChainError, OSError, Web3Exception)


def failure(chain_name: str, err: BaseException) -> str:
    """One line saying why ``chain_name``'s part failed (without the chain's name our errors start with)."""
    text = " ".join(str(err).removeprefix(f"{chain_name}: ").split())
    return text if isinstance(err, (GovernanceError, CatalogError, ChainError)) else f"{type(err).__name__}: {text}"


class Governance:
    """Sends governance transactions on a set of chains and records every proposal."""

    def __init__(self, chains: list[GovernedChain], database: Database | None = None) -> None:
        self.chains = {chain.name: chain for chain in chains}
        self.database = database
        self._senders: dict[tuple[str, str], SyncSender] = {}

    def close(self) -> None:
        """Stop the senders' lifecycle threads."""
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            sender.close()

    def __enter__(self) -> Governance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chain(self, name: str) -> GovernedChain:
        try:
            return self.chains[name]
        except KeyError:
            raise GovernanceError(f"unknown chain {name!r}: {', '.join(self.chains)}") from None

    def _sender(self, chain: GovernedChain, signer: Signer) -> SyncSender:
        """One sender per chain and key for the Governance's life (each runs a lifecycle thread)."""
        key = (chain.name, signer.address)
        if key not in self._senders:
            self._senders[key] = SyncSender(chain.w3, signer, chain_name=chain.name)
        return self._senders[key]

    def _send(self, chain: GovernedChain, signer: Signer, action: str, call: Call) -> str:
        return self._mined(chain, signer, action, call).tx_hash

    def _mined(self, chain: GovernedChain, signer: Signer, action: str, call: Call) -> Receipt:
        # a fresh intent per command: the same action may rightly be sent again later (pause after an unpause)
        key = f"governance:{chain.chain_id}:{action}:{secrets.token_hex(8)}"
        try:
            return self._sender(chain, signer).send(key, call)
        except (GasEstimationFailed, TransactionReverted) as err:
            raise GovernanceError(f"{chain.name}: {action} reverted: {revert_reason(err)}") from err

    def _act(self, chain: GovernedChain, signer: Signer, key: str, function: str, reason: str | None) -> str:
        """Call ``function`` on the contract ``key`` directly (not through the Timelock) and persist it as a
        governance action, audited, once mined: the reconciler matches its event by the transaction."""
        contract = chain.contract(key)
        receipt = self._mined(chain, signer, f"{function}-{key}", Call.function(contract, function))
        if self.database is not None:
            action = ActionRecord(
                chain_id=chain.chain_id,
                chain_name=chain.name,
                action=function,
                contract=key,
                address=contract.address,
                sender=signer.address,
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
                reason=reason,
            )
            with self.database.unit_of_work() as uow:
                SqlActionRepository(uow.session).add(action)
                uow.commit()
        return receipt.tx_hash

    def _persist(self, proposal: ChainProposal, proposer: str, state: OperationState) -> None:
        """Save the proposal; a cancellation updates ours only (``SqlProposalRepository.cancelled``): one of an
        operation scheduled outside our commands creates no proposal, or reconciliation would call it ours."""
        if self.database is None:
            return
        record = ProposalRecord(
            chain_id=proposal.chain_id,
            chain_name=proposal.chain_name,
            timelock=proposal.timelock,
            operation_id=proposal.operation_id,
            calls=proposal.to_json()["calls"],
            salt="0x" + proposal.operation.salt.hex(),
            predecessor="0x" + proposal.operation.predecessor.hex(),
            delay_seconds=proposal.delay,
            proposer=proposer,
            state=state.value,
            tx_hashes=dict(proposal.tx_hashes),
            safe_tx_hash=None if proposal.safe_tx is None else "0x" + proposal.safe_tx.safe_tx_hash.hex(),
        )
        with self.database.unit_of_work() as uow:
            repository = SqlProposalRepository(uow.session)
            if state is not OperationState.CANCELLED:
                repository.save(record)
            elif not repository.cancelled(record):
                log.warning(
                    "%s: cancelled operation %s, which no proposal of ours scheduled (reconciliation reports it)",
                    proposal.chain_name,
                    proposal.operation_id,
                )
            uow.commit()

    # ------------------------------------------------------------------ propose

    def schedule_directly(self, proposals: list[ChainProposal], proposer: Signer) -> None:
        """Schedule each chain's operation from a proposer key (on devnets the deployer)."""
        production_guard([proposer.address])
        for proposal in proposals:
            chain = self.chain(proposal.chain_name)
            call = schedule_call(proposal.timelock, proposal.operation, proposal.delay)
            proposal.tx_hashes["schedule"] = self._send(chain, proposer, "schedule", call)
            self._persist(proposal, proposer.address, OperationState.PENDING)

    def submit(self, proposals: list[ChainProposal], signatures: list[OwnerSignature], sender: Signer) -> None:
        """Execute each chain's SafeTx with its owners' signatures (at least the Safe's threshold, every one an
        owner's), each SafeTx checked to be the one its proposal needs (``check_safe_transaction`` against the chain's
        deployments record, at the Safe's present nonce) — refused before anything is sent otherwise."""
        production_guard([sender.address])
        packed = []
        for proposal in proposals:
            chain = self.chain(proposal.chain_name)
            check_safe_transaction(proposal, chain.record)
            assert proposal.safe_tx is not None
            state = read_safe(chain.safe)
            if state.nonce != proposal.safe_tx.nonce:
                raise SafeTransactionMismatch(
                    f"{chain.name}: the SafeTx is for the Safe's nonce {proposal.safe_tx.nonce}, the Safe is at "
                    f"{state.nonce}: propose again"
                )
            mine = [s for s in signatures if s.transaction == proposal.safe_tx]
            packed.append((proposal, chain, pack_signatures(proposal.safe_tx, mine, state.owners, state.threshold)))
        for proposal, chain, signature_bytes in packed:
            assert proposal.safe_tx is not None
            call = exec_transaction_call(chain.safe, proposal.safe_tx, signature_bytes)
            proposal.tx_hashes[proposal.action] = self._send(chain, sender, f"safe-{proposal.action}", call)
            if proposal.action == "cancel":
                self._persist(proposal, proposal.safe_tx.safe, OperationState.CANCELLED)
            else:
                self._persist(proposal, proposal.safe_tx.safe, OperationState.PENDING)

    # ------------------------------------------------------------------ execute, cancel, list

    def execute(self, chain_name: str, operation_id: str, sender: Signer) -> str:
        """Execute a ready operation (anyone may); refused with the reason while it waits out its delay."""
        production_guard([sender.address])
        chain = self.chain(chain_name)
        scheduled = self.find(chain, operation_id)
        if scheduled.state is OperationState.PENDING and chain.chain_id in DEVNET_CHAIN_IDS:
            # anvil mines only on transactions and the Timelock judges by the latest block's time: on an idle
            # devnet the delay may be over by the clock while no block says so. A block is mined first, as any
            # transaction would mine one (a local devnet's chain id only: never a production chain)
            chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            scheduled = self.find(chain, operation_id)
        if scheduled.state is not OperationState.READY:
            now = int(chain.w3.eth.get_block("latest")["timestamp"])
            reason = self._execute_revert(chain, scheduled, sender)
            when = f" until {scheduled.ready_at} (now {now})" if scheduled.state is OperationState.PENDING else ""
            raise OperationNotReady(
                f"{chain.name}: operation {operation_id} is {scheduled.state.value}{when}; executing now reverts "
                f"with {reason}"
            )
        call = execute_call(chain.record.address("Timelock"), scheduled.operation)
        tx_hash = self._send(chain, sender, "execute", call)
        self._update(chain, scheduled, OperationState.DONE, "execute", tx_hash)
        return tx_hash

    def try_execute(self, chain_name: str, operation_id: str, sender: Signer) -> Execution:
        """``execute`` on one chain, its outcome returned rather than raised: an id may be scheduled on some chains
        only, or be ready on one and pending on another, and each chain's part stands alone."""
        try:
            tx_hash = self.execute(chain_name, operation_id, sender)
        except OperationNotFound as err:
            return Execution(chain_name, operation_id, ExecutionStatus.NOT_FOUND, failure(chain_name, err))
        except OperationNotReady as err:
            return Execution(chain_name, operation_id, ExecutionStatus.NOT_READY, failure(chain_name, err))
        except CHAIN_FAILURES as err:
            return Execution(chain_name, operation_id, ExecutionStatus.FAILED, failure(chain_name, err))
        return Execution(chain_name, operation_id, ExecutionStatus.EXECUTED, tx_hash)

    def _execute_revert(self, chain: GovernedChain, scheduled: ScheduledOperation, sender: Signer) -> str:
        timelock = chain.record.address("Timelock")
        call = execute_call(timelock, scheduled.operation)
        try:
            chain.w3.eth.call({"from": sender.address, "to": timelock, "data": call.data, "value": Wei(call.value)})
        except (ContractCustomError, ContractLogicError) as err:
            return revert_reason(err)
        return "nothing (the chain would accept it)"

    def prepare_cancel(self, chain_name: str, operation_id: str) -> ChainProposal:
        """The SafeTx by which the Safe (the production canceller) cancels ``operation_id``; owners sign it and
        ``submit`` sends it, as for a proposal."""
        chain = self.chain(chain_name)
        scheduled = self.find(chain, operation_id)
        if scheduled.state not in (OperationState.PENDING, OperationState.READY):
            raise OperationNotReady(f"{chain.name}: operation {operation_id} is {scheduled.state.value}")
        timelock = chain.record.address("Timelock")
        safe = chain.safe
        return ChainProposal(
            chain_name=chain.name,
            chain_id=chain.chain_id,
            timelock=timelock,
            operation=scheduled.operation,
            delay=scheduled.delay,
            calls=[chain.describe(call) for call in scheduled.operation.calls],
            safe_tx=SafeTransaction(
                safe=safe.address,
                chain_id=chain.chain_id,
                to=timelock,
                data=cancel_call(timelock, scheduled.operation_id).data,
                nonce=read_safe(safe).nonce,
            ),
            action="cancel",
        )

    def cancel(self, chain_name: str, operation_id: str, canceller: Signer) -> str:
        """Cancel a pending or ready operation from a canceller key (the Safe cancels through ``prepare_cancel``)."""
        production_guard([canceller.address])
        chain = self.chain(chain_name)
        scheduled = self.find(chain, operation_id)
        call = cancel_call(chain.record.address("Timelock"), scheduled.operation_id)
        tx_hash = self._send(chain, canceller, "cancel", call)
        self._update(chain, scheduled, OperationState.CANCELLED, "cancel", tx_hash)
        return tx_hash

    def _update(
        self, chain: GovernedChain, scheduled: ScheduledOperation, state: OperationState, action: str, tx: str
    ) -> None:
        if self.database is None:
            return
        with self.database.unit_of_work() as uow:
            repository = SqlProposalRepository(uow.session)
            known = repository.get(
                chain.chain_id, chain.record.address("Timelock"), "0x" + scheduled.operation_id.hex()
            )
            if known is not None:
                repository.save(replace(known, state=state.value, tx_hashes={action: tx}))
                uow.commit()

    def find(self, chain: GovernedChain, operation_id: str) -> ScheduledOperation:
        wanted = _operation_bytes(operation_id)
        for scheduled in read_operations(chain.timelock, chain.timelock_block):
            if scheduled.operation_id == wanted:
                return scheduled
        raise OperationNotFound(f"{chain.name}: no operation {operation_id} was ever scheduled on its Timelock")

    def operations(self, chain_name: str) -> list[ScheduledOperation]:
        chain = self.chain(chain_name)
        operations = read_operations(chain.timelock, chain.timelock_block)
        self._reconcile(chain, operations)
        return operations

    def _reconcile(self, chain: GovernedChain, operations: list[ScheduledOperation]) -> None:
        """Bring recorded proposals up to the chain: an operation anyone executed, or a proposer cancelled, outside
        these commands is recorded as done or cancelled with its transaction."""
        if self.database is None:
            return
        timelock = chain.record.address("Timelock")
        with self.database.unit_of_work() as uow:
            repository = SqlProposalRepository(uow.session)
            for scheduled in operations:
                known = repository.get(chain.chain_id, timelock, "0x" + scheduled.operation_id.hex())
                if known is None or known.state == scheduled.state.value:
                    continue
                seen = {"execute": scheduled.executed_tx, "cancel": scheduled.cancelled_tx}
                hashes = {action: tx for action, tx in seen.items() if tx is not None}
                repository.save(replace(known, state=scheduled.state.value, tx_hashes=hashes))
            uow.commit()

    def state(self, chain_name: str, operation_id: str) -> OperationState:
        chain = self.chain(chain_name)
        return operation_state(chain.timelock, _operation_bytes(operation_id))

    # ------------------------------------------------------------------ guardian

    def pause(
        self, chain_name: str, guardian: Signer, *, liquidations: bool = False, reason: str | None = None
    ) -> PauseOutcome:
        """Pause at once as the guardian: every pausable contract (opening loans, collateral withdrawals, pool
        borrowing), or only liquidations. Contracts already paused are skipped; each pause sent is persisted as a
        governance action with ``reason``. A contract that refuses (the guardian without its role there, the RPC
        gone) does not stop the others: it is reported in the outcome."""
        production_guard([guardian.address])
        chain = self.chain(chain_name)
        if liquidations:
            targets = [("CollateralManager", "pauseLiquidations", "liquidationsPaused")]
        else:
            targets = [(key, "pause", "paused") for key in keys_matching(chain.record, PAUSABLE)]
        outcome = PauseOutcome()
        for key, function, paused in targets:
            what = f"{key}.{function}"
            try:
                if not getattr(chain.contract(key).functions, paused)().call():
                    outcome.sent.append((what, self._act(chain, guardian, key, function, reason)))
            except CHAIN_FAILURES as err:
                outcome.refused.append((what, failure(chain.name, err)))
        return outcome


def _operation_bytes(operation_id: str) -> bytes:
    """An operation id's 32 bytes; refused (``GovernanceError``) unless it is ``0x`` and 64 hex digits."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", operation_id):
        raise GovernanceError(f"{operation_id!r} is not an operation id: 0x and 64 hex digits")
    return bytes.fromhex(operation_id[2:])
