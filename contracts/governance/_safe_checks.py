"""What ``sign`` and ``submit`` check before an owner signs or anyone sends: that a proposal file's SafeTx is the one
that does what the file shows — rebuilt from the file's operation and compared field by field, each difference
named — and, with the chain's deployments record, that the Timelock, the Safe, the chain id and each call's shown
decoding are the record's."""

from __future__ import annotations

from eth_typing import ChecksumAddress

from chain.deployment import DeploymentRecord
from chain.safe import SafeTransaction
from chain.timelock import cancel_call, describe_call, schedule_call
from contracts.governance._errors import GovernanceError, SafeTransactionMismatch
from contracts.governance._files import ChainProposal
from contracts.governance.catalog import decode, decode_unrecorded

SAFE_KEY = "Safe"


def expected_safe_transaction(proposal: ChainProposal, safe: ChecksumAddress, nonce: int) -> SafeTransaction:
    """The SafeTx that does what ``proposal`` shows, rebuilt from it: a CALL of value 0 to its Timelock of
    ``schedule`` / ``scheduleBatch`` of its operation with its delay (``cancel`` of its id for a cancellation), by
    ``safe`` on the proposal's chain at ``nonce``."""
    if proposal.action == "cancel":
        call = cancel_call(proposal.timelock, proposal.operation.operation_id)
    elif proposal.action == "schedule":
        call = schedule_call(proposal.timelock, proposal.operation, proposal.delay)
    else:
        raise SafeTransactionMismatch(f"{proposal.chain_name}: unknown action {proposal.action!r}: schedule or cancel")
    return SafeTransaction(safe=safe, chain_id=proposal.chain_id, to=proposal.timelock, data=call.data, nonce=nonce)


def check_safe_transaction(proposal: ChainProposal, record: DeploymentRecord | None = None) -> SafeTransaction:
    """The proposal's SafeTx, refused (SafeTransactionMismatch, naming each difference) unless it is the one its
    operation needs at the nonce it records. With the chain's deployments record, the Timelock, the Safe, the chain id
    and each call's decoding shown in the file are checked against it too (off-line, none of those can be)."""
    found = proposal.safe_tx
    if found is None:
        raise GovernanceError(f"{proposal.chain_name}: the proposal has no Safe transaction")
    safe = found.safe if record is None else record.address(SAFE_KEY)
    expected = expected_safe_transaction(proposal, safe, found.nonce)
    differences = [] if record is None else _record_differences(proposal, record)
    for name in ("safe", "chain_id", "to", "value"):
        if getattr(found, name) != getattr(expected, name):
            differences.append(f"its {name} is {getattr(found, name)}, not {getattr(expected, name)}")
    if found.data != expected.data:
        differences.append(
            f"its data is {describe_call(found.data)}, not {describe_call(expected.data)} (the proposal's calls, salt, "
            "predecessor and delay)"
        )
    if differences:
        raise SafeTransactionMismatch(
            f"{proposal.chain_name}: the SafeTx is not the one that {proposal.action}s operation "
            f"{proposal.operation_id}: {'; '.join(differences)}"
        )
    return found


def _record_differences(proposal: ChainProposal, record: DeploymentRecord) -> list[str]:
    differences = []
    if proposal.chain_id != record.chain_id:
        differences.append(
            f"the proposal's chain id is {proposal.chain_id}, the deployments record's {record.chain_id}"
        )
    if proposal.timelock != record.address("Timelock"):
        differences.append(f"the proposal's Timelock is {proposal.timelock}, not {record.address('Timelock')}")
    for index, (shown, call) in enumerate(zip(proposal.calls, proposal.operation.calls, strict=True)):
        if shown != decode(record, call):
            differences.append(f"call {index} is shown as {shown}, its calldata is {decode(record, call)}")
    return differences


def describe_calls(proposal: ChainProposal, record: DeploymentRecord | None = None) -> list[str]:
    """The proposal's calls decoded from their calldata (never the file's own text): by the deployments record when
    there is one, else by our contracts' ABIs."""
    calls = proposal.operation.calls
    return [decode(record, call) for call in calls] if record else [decode_unrecorded(call) for call in calls]
