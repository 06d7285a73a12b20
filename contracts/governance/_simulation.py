"""Every proposal is made as the Timelock before it is proposed: each call ``eth_call``-ed from the Timelock against
the chain's present state (refused naming the first that would revert, and why, decoded from our contracts' and
OpenZeppelin's errors); ``--dry-run`` shows each value before and after, read now or, with ``--fork``, from a local
anvil fork on which the calls were really made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from chain.errors import GasEstimationFailed
from chain.revert import decode_revert
from chain.timelock import TimelockCall
from contracts.governance._chains import GovernedChain
from contracts.governance._errors import ProposalRefused
from contracts.governance.catalog import GovernedCall, before_and_after, encode

# the Timelock's errors, ours, and OpenZeppelin's our contracts inherit (Pausable's ExpectedPause / EnforcedPause,
# AccessControl's, ERC-4626's): a refusal names the error, never its raw selector
REVERT_ARTIFACTS = ("TimelockController", "Errors", "CreditAggregator", "CollateralManager", "LendingPool")


def revert_reason(err: Exception) -> str:
    data = getattr(err, "data", None)
    if isinstance(data, str):
        decoded = decode_revert(data, REVERT_ARTIFACTS)
        if decoded is not None:
            return str(decoded)
    if isinstance(err, GasEstimationFailed) and err.revert_data:
        decoded = decode_revert(err.revert_data, REVERT_ARTIFACTS)
        if decoded is not None:
            return str(decoded)
    return str(err)


def simulate(chain: GovernedChain, calls: list[GovernedCall]) -> list[TimelockCall]:
    """Each call made as the Timelock with ``eth_call`` against the chain's present state; the encoded calls, or
    ProposalRefused naming the first that would revert and why."""
    encoded = []
    timelock = chain.record.address("Timelock")
    for call in calls:
        timelock_call = encode(chain.record, call)
        try:
            chain.w3.eth.call({"from": timelock, "to": timelock_call.target, "data": timelock_call.data})
        except (ContractCustomError, ContractLogicError) as err:
            raise ProposalRefused(
                f"{chain.name}: {call.describe()} would revert as the Timelock: {revert_reason(err)}"
            ) from err
        encoded.append(timelock_call)
    return encoded


@dataclass(frozen=True, slots=True)
class DryRunLine:
    chain: str
    call: str
    before: Any
    after: Any


def dry_run(chain: GovernedChain, calls: list[GovernedCall]) -> list[DryRunLine]:
    """Simulate, then show what each call changes: the value read now and the value it sets."""
    simulate(chain, calls)
    lines = []
    for call in calls:
        values = before_and_after(chain.contract(call.key), call)
        before, after = values if values is not None else ("-", "-")
        lines.append(DryRunLine(chain.name, call.describe(), before, after))
    return lines


def fork_dry_run(chain: GovernedChain, calls: list[GovernedCall]) -> list[DryRunLine]:
    """Make the calls as the Timelock on a local anvil fork of the chain (the chain itself is never touched) and
    show each value before and after, read from the fork: what executing the proposal would really leave."""
    from chain.config import LocalChain
    from chain.devnet import start_devnet

    simulate(chain, calls)
    rpc = str(getattr(chain.w3.provider, "endpoint_uri", ""))
    fork = start_devnet(LocalChain(name=f"{chain.name}-fork", chain_id=chain.chain_id, port=0), port=0, fork_url=rpc)
    try:
        w3 = Web3(Web3.HTTPProvider(fork.rpc_url, request_kwargs={"timeout": 30}))
        forked = GovernedChain(chain.name, w3, chain.record)
        timelock = chain.record.address("Timelock")
        w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
        w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])  # type: ignore[arg-type]
        befores = [before_and_after(forked.contract(call.key), call) for call in calls]
        for call in calls:
            encoded = encode(chain.record, call)
            tx_hash = w3.eth.send_transaction({"from": timelock, "to": encoded.target, "data": encoded.data})
            if w3.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
                raise ProposalRefused(f"{chain.name}: {call.describe()} reverted on a fork of the chain")
        lines = []
        for call, values in zip(calls, befores, strict=True):
            after = before_and_after(forked.contract(call.key), call)
            before_value = "-" if values is None else values[0]
            after_value = "-" if after is None else after[0]
            lines.append(DryRunLine(chain.name, call.describe(), before_value, after_value))
        return lines
    finally:
        fork.stop()
