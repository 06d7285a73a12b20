"""Simulating a contract call before committing to it: ``eth_call`` as the sender, a revert decoded to its error (ours,
``Error(string)`` or ``Panic(uint256)``; else the node's message). Sending goes through
``chain.transactions.TransactionManager``.

The call is pinned to the head block read just before it, and a revert is trusted only if the head has not moved
meanwhile: anvil can run an ``eth_call`` for the head with that block's environment but the state of a block mined
during the call. Under ~100 concurrent accepts this made a valid ``openLoan`` revert with Panic(0x11) at
``LendingPool._accrue``'s ``block.timestamp - lastAccrual``: the call's ``block.timestamp`` was block N's second while
``lastAccrual`` was block N+1's, one second later. A revert while the head moved is simulated again at the new head.
"""

from __future__ import annotations

from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from web3.exceptions import ContractCustomError, ContractLogicError

from chain.errors import TransactionReverted
from chain.revert import decode_revert

REVERT_ARTIFACTS = ("Errors", "MockERC20", "CreditAggregator", "LendingPool", "CollateralManager")
# Simulations of one call when each revert came while the head moved; the last one's revert is final.
SIMULATION_ATTEMPTS = 3


class _RevertedWhileHeadMoved(TransactionReverted):
    """The simulation reverted and a block was mined while it ran: its state and block may disagree."""


async def simulate(call: Any, sender: str) -> Any:
    """``eth_call`` the contract function as ``sender`` at the head block; a revert raises TransactionReverted
    naming its error (re-simulated at the new head, up to SIMULATION_ATTEMPTS in all, when the head moved)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(SIMULATION_ATTEMPTS),
        retry=retry_if_exception_type(_RevertedWhileHeadMoved),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _simulate_at_head(call, sender)
    raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover


async def _simulate_at_head(call: Any, sender: str) -> Any:
    head = await call.w3.eth.block_number
    try:
        return await call.call({"from": sender}, block_identifier=head)
    except ContractLogicError as err:
        reverted = _reverted(err)
        if await call.w3.eth.block_number != head:
            raise _RevertedWhileHeadMoved(str(reverted), revert_data=reverted.revert_data) from err
        raise reverted from err


async def revert_of(provider: Any, request: dict[str, str]) -> str | None:
    """The servicing jobs' simulation of a raw ``request`` (``from``, ``to``, ``data``) through ``provider``
    (``make_request``): None when it succeeds at the head, else its revert, decoded where our artifacts know it. Pinned
    and re-run like ``simulate``: a revert while the head moved is tried again at the new head."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(SIMULATION_ATTEMPTS),
        retry=retry_if_exception_type(_RevertedWhileHeadMoved),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await _raw_call_at_head(provider, request)
    except TransactionReverted as err:
        return str(err)
    return None


async def estimate_gas(provider: Any, request: dict[str, str]) -> int | None:
    """``eth_estimateGas`` of a raw ``request`` (``from``, ``to``, ``data``) through ``provider``: the gas it takes at
    the head, which also says it does not revert now — one RPC (one estimate) where a simulation and then the
    sender's own estimate were two. A failed estimate is not trusted as it stands (anvil's race above, and an
    estimate fails for reasons other than a revert): the call is simulated as ``revert_of`` does, pinned and re-run,
    and TransactionReverted names its revert; None when that simulation succeeds (the sender estimates again)."""
    answer = await provider.make_request("eth_estimateGas", [request])
    if answer.get("error") is None:
        return int(str(answer["result"]), 16)
    reverted = await revert_of(provider, request)
    if reverted is not None:
        raise TransactionReverted(reverted)
    return None


async def _raw_call_at_head(provider: Any, request: dict[str, str]) -> None:
    head = (await provider.make_request("eth_blockNumber", []))["result"]
    answer = await provider.make_request("eth_call", [request, head])
    error = answer.get("error")
    if error is None:
        return
    reason = _reason(error)
    if (await provider.make_request("eth_blockNumber", []))["result"] != head:
        raise _RevertedWhileHeadMoved(reason)
    raise TransactionReverted(reason)


def _reason(error: object) -> str:
    """A JSON-RPC error's revert as a reader takes it: its data decoded (our contracts' errors, ``Error(string)``,
    ``Panic(uint256)``), else the node's own message (``execution reverted`` for a bare ``revert()``), never the
    error object's Python repr."""
    if not isinstance(error, dict):
        return str(error)
    decoded = decode_revert(error.get("data"), REVERT_ARTIFACTS)
    if decoded is not None:
        return str(decoded)
    message = error.get("message")
    return message if isinstance(message, str) and message else "execution reverted"


def _reverted(err: ContractLogicError) -> TransactionReverted:
    decoded = decode_revert(err.data, REVERT_ARTIFACTS)
    if decoded is not None:
        return TransactionReverted(str(decoded), revert_data=str(err.data))
    if isinstance(err, ContractCustomError):
        return TransactionReverted(f"custom error {err.data}", revert_data=str(err.data))
    return TransactionReverted(err.message or "execution reverted", revert_data=str(err.data))
