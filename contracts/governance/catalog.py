"""What our contracts let governance do: which role sits on which contract, which functions the Timelock calls
(the contracts enforce their bounds; ``creditmesh admin`` simulates every call as the Timelock before proposing),
how a call is named and decoded, and which view shows its value before and after (``--dry-run``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import MismatchedABI, Web3ValidationError

from chain.artifacts import load_artifact
from chain.deployment import TOKEN_ADDRESSES_PARAMETER, TOKENS_PARAMETER, DeploymentRecord
from chain.timelock import TimelockCall

# Role → the record keys of the contracts that hold it (a pattern may match several pools). A role is used only
# on contracts whose ABI declares it (RELAYER_ROLE arrives with the hardened CreditAggregator, ANCHOR_ROLE with
# the AuditAnchor).
ROLE_CONTRACTS: dict[str, tuple[str, ...]] = {
    "QUOTE_SIGNER_ROLE": ("CreditAggregator",),
    "OPERATOR_ROLE": ("CreditAggregator",),
    "RELAYER_ROLE": ("CreditAggregator",),
    "GUARDIAN_ROLE": ("CreditAggregator", "CollateralManager", "LendingPool:*"),
    "RISK_SIGNER_ROLE": ("CreditScoringOracle",),
    "ANCHOR_ROLE": ("AuditAnchor",),
}
# The names admins type.
ROLE_NAMES: dict[str, str] = {
    "quote-signer": "QUOTE_SIGNER_ROLE",
    "operator": "OPERATOR_ROLE",
    "relayer": "RELAYER_ROLE",
    "guardian": "GUARDIAN_ROLE",
    "risk-signer": "RISK_SIGNER_ROLE",
    "audit-anchor": "ANCHOR_ROLE",
}
# Contracts the guardian pauses at once (and only the Timelock unpauses).
PAUSABLE: tuple[str, ...] = ("CreditAggregator", "CollateralManager", "LendingPool:*")


class CatalogError(ValueError):
    """A role, contract or asset governance does not know on this chain."""


@dataclass(frozen=True, slots=True)
class GovernedCall:
    """``record[key].function(*args)``, made by the Timelock."""

    key: str
    function: str
    args: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"{self.key}.{self.function}({', '.join(_show(arg) for arg in self.args)})"


def role_id(role: str) -> bytes:
    return keccak(text=role)


def resolve_role(name: str) -> str:
    """``quote-signer`` or ``QUOTE_SIGNER_ROLE`` → ``QUOTE_SIGNER_ROLE``."""
    role = ROLE_NAMES.get(name, name.upper())
    if role not in ROLE_CONTRACTS:
        raise CatalogError(f"unknown role {name!r}: one of {', '.join(ROLE_NAMES)}")
    return role


def keys_matching(record: DeploymentRecord, patterns: tuple[str, ...]) -> list[str]:
    return [key for key in record.contracts if any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)]


def role_holders(record: DeploymentRecord, role: str) -> list[str]:
    """The record keys of the contracts on which ``role`` exists."""
    keys = [key for key in keys_matching(record, ROLE_CONTRACTS[role]) if _declares(record, key, role)]
    if not keys:
        raise CatalogError(f"no contract on {record.chain_name} has {role}")
    return keys


def _declares(record: DeploymentRecord, key: str, function: str) -> bool:
    return any(item.get("name") == function for item in load_artifact(record.contracts[key].artifact).abi)


@cache
def _codec(artifact: str) -> type[Contract]:
    return Web3().eth.contract(abi=load_artifact(artifact).abi)


def encode(record: DeploymentRecord, call: GovernedCall) -> TimelockCall:
    try:
        deployed = record.contracts[call.key]
    except KeyError:
        raise CatalogError(f"{call.key} is not deployed on {record.chain_name}") from None
    _check_integers(deployed.artifact, call)
    try:
        data = _codec(deployed.artifact).encode_abi(call.function, list(call.args))
    except (MismatchedABI, Web3ValidationError) as err:
        raise CatalogError(f"{call.key}.{call.function}{tuple(call.args)!r} does not fit its ABI: {err}") from err
    return TimelockCall(target=deployed.address, data=bytes.fromhex(data[2:]))


def _check_integers(artifact: str, call: GovernedCall) -> None:
    """An integer argument outside its ABI type's range, named with the range (web3 would only say that no
    function matches the arguments)."""
    candidates = [
        item
        for item in load_artifact(artifact).abi
        if item.get("type") == "function"
        and item.get("name") == call.function
        and len(item.get("inputs", [])) == len(call.args)
    ]
    if len(candidates) != 1:
        return  # no such function, or overloads: web3's own matching says what is wrong
    for spec, value in zip(candidates[0]["inputs"], call.args, strict=True):
        kind = str(spec.get("type", ""))
        if isinstance(value, bool) or not isinstance(value, int) or not kind.startswith(("uint", "int")):
            continue
        bits = int(kind.removeprefix("u").removeprefix("int") or 256)
        low, high = (0, 2**bits - 1) if kind.startswith("uint") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if not low <= value <= high:
            raise CatalogError(
                f"{call.key}.{call.function}: {spec.get('name') or 'an argument'} = {value} is outside {kind} "
                f"({low} to {high})"
            )


def decode(record: DeploymentRecord, call: TimelockCall) -> str:
    """``CreditAggregator.setGracePeriod(newGracePeriod=86400)`` for a call to a recorded contract, else the raw target
    and calldata."""
    for key, deployed in record.contracts.items():
        if deployed.address == call.target:
            decoded = _decoded(deployed.artifact, call)
            if decoded is not None:
                return f"{key}.{decoded}"
            break
    return _raw(call)


# Our governed contracts' artifacts, for decoding a call without a deployments record at hand
GOVERNED_ARTIFACTS = ("CreditAggregator", "CollateralManager", "LendingPool", "CreditScoringOracle", "AuditAnchor")


def decode_unrecorded(call: TimelockCall) -> str:
    """``0x…(target).setGracePeriod(newGracePeriod=86400)``: a call decoded by the first of our contracts' ABIs that
    has its function, when no deployments record names the target (an owner signing off-line); else the raw
    calldata."""
    for artifact in GOVERNED_ARTIFACTS:
        decoded = _decoded(artifact, call)
        if decoded is not None:
            return f"{call.target}.{decoded}"
    return _raw(call)


def _decoded(artifact: str, call: TimelockCall) -> str | None:
    try:
        function, arguments = _codec(artifact).decode_function_input(call.data)
    except ValueError:
        return None
    shown = ", ".join(f"{name}={_show(value)}" for name, value in arguments.items())
    return f"{function.fn_name}({shown})" + (f" value={call.value}" if call.value else "")


def _raw(call: TimelockCall) -> str:
    return f"{call.target} calldata 0x{call.data.hex()}" + (f" value={call.value}" if call.value else "")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


# --dry-run: a governed function → (view function, its arguments from the call's, the value after from the call's)
View = tuple[str, Callable[[tuple[Any, ...]], list[Any]], Callable[[tuple[Any, ...]], Any]]
VIEWS: dict[str, View] = {
    "setGracePeriod": ("gracePeriod", lambda a: [], lambda a: a[0]),
    "setReserveFactor": ("reserveFactorBps", lambda a: [], lambda a: a[0]),
    "setCollateralParameters": ("collateralConfig", lambda a: [a[0]], lambda a: list(a[1:])),
    "setSettlementAddress": ("settlementAddress", lambda a: [a[0]], lambda a: a[1]),
    "setPriceFeed": ("priceSources", lambda a: [a[0]], lambda a: [a[1], a[2]]),
    "registerPool": ("poolId", lambda a: [a[0]], lambda a: "next pool id"),
    "unpause": ("paused", lambda a: [], lambda a: False),
    "unpauseLiquidations": ("liquidationsPaused", lambda a: [], lambda a: False),
    "grantRole": ("hasRole", lambda a: list(a), lambda a: True),
    "revokeRole": ("hasRole", lambda a: list(a), lambda a: False),
}
# setters of several values, each with its own view, in the setter's argument order
MULTI_VIEWS: dict[str, tuple[str, ...]] = {
    "setRateModel": ("baseRateBps", "slope1Bps", "slope2Bps", "optimalUtilizationBps"),
    "setLiquidationThresholds": ("fullCloseValue", "minLeftoverValue"),
}


def before_and_after(contract: Contract, call: GovernedCall) -> tuple[Any, Any] | None:
    """The value ``call`` changes, read now from chain, and the value it sets; None for a function without a
    view."""
    if call.function in MULTI_VIEWS:
        before = [int(getattr(contract.functions, name)().call()) for name in MULTI_VIEWS[call.function]]
        return before, list(call.args)
    view = VIEWS.get(call.function)
    if view is None:
        return None
    name, arguments, after = view
    before = getattr(contract.functions, name)(*arguments(call.args)).call()
    if call.function == "setCollateralParameters":
        before = list(before)[:4]  # ltv, liquidation threshold, bonus, supply cap (not the running total)
    elif call.function == "setPriceFeed":
        before = list(before)[:2]  # feed, heartbeat (not the decimals it caches)
    return before, after(call.args)


def token_address(record: DeploymentRecord, asset: str) -> ChecksumAddress:
    """A token by its record key (devnet mocks), its listing in the ``tokens`` parameter, or — in a production
    record written before the tokens were listed — the ``tokenAddresses`` parameter."""
    if asset in record.contracts:
        return record.contracts[asset].address
    listed = record.parameters.get(TOKENS_PARAMETER, {}).get(asset, {}).get("address")
    configured = listed or record.parameters.get(TOKEN_ADDRESSES_PARAMETER, {}).get(asset)
    if configured:
        return to_checksum_address(configured)
    raise CatalogError(f"unknown asset {asset!r} on {record.chain_name}")
