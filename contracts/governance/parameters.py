"""Proposals an admin asks for by name, each a function of the chain (addresses and decimals differ per chain):
collateral parameters, the pool's rate model and reserve factor, the grace period, settlement addresses, pool
registration, unpausing what is paused, and role grants, revocations and rotations (the new key granted before the
old one is revoked, in one batch). Bounds are the contracts' own: ``service.simulate`` runs every call as the
Timelock; the liquidation thresholds' are also checked here first, for a CollateralManager deployed without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from chain.artifacts import load_artifact
from chain.signers import production_guard as guard
from contracts.deploy import pool_key
from contracts.governance.catalog import (
    PAUSABLE,
    CatalogError,
    GovernedCall,
    keys_matching,
    resolve_role,
    role_holders,
    role_id,
    token_address,
)
from contracts.governance.pools import POOL_ARTIFACT, role_members
from contracts.governance.service import CallsFor, GovernedChain, ProposalRefused

DEFAULT_ADMIN_ROLE = b"\x00" * 32  # OpenZeppelin AccessControl's


def collateral_parameters(asset: str, ltv_bps: int, threshold_bps: int, bonus_bps: int, supply_cap: int) -> CallsFor:
    """``supply_cap`` in whole tokens (scaled by the token's decimals on each chain)."""

    def calls(chain: GovernedChain) -> list[GovernedCall]:
        token = token_address(chain.record, asset)
        erc20 = chain.w3.eth.contract(address=token, abi=_DECIMALS_ABI)
        cap = supply_cap * 10 ** int(erc20.functions.decimals().call())
        args = (token, ltv_bps, threshold_bps, bonus_bps, cap)
        return [GovernedCall("CollateralManager", "setCollateralParameters", args)]

    return calls


def rate_model(asset: str, base_bps: int, slope1_bps: int, slope2_bps: int, optimal_bps: int) -> CallsFor:
    args = (base_bps, slope1_bps, slope2_bps, optimal_bps)
    return lambda chain: [GovernedCall(pool_key(asset), "setRateModel", args)]


def reserve_factor(asset: str, bps: int) -> CallsFor:
    return lambda chain: [GovernedCall(pool_key(asset), "setReserveFactor", (bps,))]


def grace_period(seconds: int) -> CallsFor:
    return lambda chain: [GovernedCall("CreditAggregator", "setGracePeriod", (seconds,))]


MAX_FULL_CLOSE_VALUE_USD8 = 1_000_000 * 10**8  # CollateralManager.MAX_FULL_CLOSE_VALUE


def liquidation_thresholds(full_close_value_usd8: int, min_leftover_value_usd8: int) -> CallsFor:
    """The close-factor thresholds: below ``full_close_value`` a liquidation may close the whole debt; it may not
    leave less than ``min_leftover_value`` (USD, 8 decimals). Refused here, before any chain is asked, unless
    ``0 <= min_leftover_value <= full_close_value / 2`` and ``full_close_value <= MAX_FULL_CLOSE_VALUE_USD8``, the
    contract's own bounds (``InvalidLiquidationThresholds``), which a CollateralManager deployed before them lacks:
    a larger leftover than half the full-close value left positions no partial liquidation could touch
    (``MustNotLeaveDust``) and no full close was allowed for."""
    if not 0 <= full_close_value_usd8 <= MAX_FULL_CLOSE_VALUE_USD8:
        raise CatalogError(
            f"full close value {full_close_value_usd8} is outside 0 to {MAX_FULL_CLOSE_VALUE_USD8} "
            "(USD with 8 decimals: at most 1,000,000 USD)"
        )
    if not 0 <= 2 * min_leftover_value_usd8 <= full_close_value_usd8:
        raise CatalogError(
            f"min leftover value {min_leftover_value_usd8} is outside 0 to half the full close value "
            f"({full_close_value_usd8 // 2}): a position liquidated partially must be able to keep that much of its "
            "debt and collateral, or no liquidation could reduce it (MustNotLeaveDust)"
        )
    args = (full_close_value_usd8, min_leftover_value_usd8)
    return lambda chain: [GovernedCall("CollateralManager", "setLiquidationThresholds", args)]


def price_feed(asset: str, feed: str, heartbeat: int) -> CallsFor:
    """``asset``'s USD price feed (Chainlink style) and its heartbeat in seconds."""
    feed_address = _address(feed)

    def calls(chain: GovernedChain) -> list[GovernedCall]:
        token = token_address(chain.record, asset)
        return [GovernedCall("CollateralManager", "setPriceFeed", (token, feed_address, heartbeat))]

    return calls


def provider_id(text: str) -> bytes:
    """A provider id as the contracts hold it: 0x-prefixed 32 bytes, or keccak256 of the provider's name. Hex that
    is not 32 bytes is refused, not hashed as a name: a pasted id missing a digit would otherwise point the setting
    at a provider nobody is."""
    if text.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in text[2:]):
        if len(text) != 66:
            raise CatalogError(
                f"provider {text!r} looks like a hex provider id but is {(len(text) - 2) / 2:g} bytes, not 32: give "
                "the id's 32 bytes (0x and 64 hex digits) or the provider's name"
            )
        return bytes.fromhex(text[2:])
    return keccak(text=text)


def settlement_address(provider: str, account: str) -> CallsFor:
    args = (provider_id(provider), _address(account))
    return lambda chain: [GovernedCall("CreditAggregator", "setSettlementAddress", args)]


def register_pool(pool: str) -> CallsFor:
    """``pool``: an address, or a pool key in the record (``LendingPool:USDC``) on each chain. Refused unless the
    pool lends for this CreditAggregator and the Timelock alone administers it: a pool whose deployer (or anyone
    else) still holds ``DEFAULT_ADMIN_ROLE`` beside the Timelock could have its parameters changed, its reserves
    withdrawn, or be unpaused, outside governance. Also refused while an account other than the Timelock and the
    chain's guardians (holders of ``GUARDIAN_ROLE`` on the CreditAggregator) holds the pool's ``GUARDIAN_ROLE``:
    it could pause the pool at will. The holders are the accounts the pool's ``RoleGranted`` events name that still
    hold the role, read from the CreditAggregator's deployment block (a pool naming the aggregator is deployed after
    it)."""

    def calls(chain: GovernedChain) -> list[GovernedCall]:
        address = chain.record.address(pool) if pool in chain.record.contracts else _address(pool)
        lending_pool = chain.w3.eth.contract(address=address, abi=load_artifact(POOL_ARTIFACT).abi)
        aggregator, timelock = chain.record.address("CreditAggregator"), chain.record.address("Timelock")
        try:
            lends_for = lending_pool.functions.creditAggregator().call()
            governed = lending_pool.functions.hasRole(DEFAULT_ADMIN_ROLE, timelock).call()
        except (ContractLogicError, BadFunctionCallOutput) as err:
            raise ProposalRefused(f"{chain.name}: {address} is not a LendingPool ({err})") from err
        if lends_for != aggregator:
            raise ProposalRefused(f"{chain.name}: pool {address} lends for {lends_for}, not the CreditAggregator")
        since = chain.record.contracts["CreditAggregator"].block
        admins = [account for account in role_members(lending_pool, DEFAULT_ADMIN_ROLE, since) if account != timelock]
        if not governed or admins:
            others = f" ({', '.join(admins)} also hold it)" if admins else ""
            raise ProposalRefused(
                f"{chain.name}: the Timelock does not administer pool {address} alone{others}: grant it "
                "DEFAULT_ADMIN_ROLE (and the guardian GUARDIAN_ROLE) and renounce every other holder's (the "
                "deployer's) before registering it"
            )
        guardian_role = role_id("GUARDIAN_ROLE")
        guardians = chain.contract("CreditAggregator").functions.hasRole
        strangers = [
            account
            for account in role_members(lending_pool, guardian_role, since)
            if account != timelock and not guardians(guardian_role, account).call()
        ]
        if strangers:
            raise ProposalRefused(
                f"{chain.name}: {', '.join(strangers)} hold(s) GUARDIAN_ROLE on pool {address} and is not the "
                "chain's guardian (it could pause the pool at will): revoke it before registering the pool"
            )
        return [GovernedCall("CreditAggregator", "registerPool", (address,))]

    return calls


def unpause(*, liquidations: bool = False) -> CallsFor:
    """Lift the guardian's pause where it holds: every contract whose ``paused()`` is true, or the liquidation pause
    only. The Timelock's unpause of a contract that is not paused reverts (``ExpectedPause()``) and with it the
    whole batch, so one is never included; a chain with nothing paused is refused."""

    def calls(chain: GovernedChain) -> list[GovernedCall]:
        if liquidations:
            if not chain.contract("CollateralManager").functions.liquidationsPaused().call():
                raise ProposalRefused(f"{chain.name}: liquidations are not paused: nothing to unpause")
            return [GovernedCall("CollateralManager", "unpauseLiquidations")]
        keys = keys_matching(chain.record, PAUSABLE)
        paused = [key for key in keys if chain.contract(key).functions.paused().call()]
        if not paused:
            raise ProposalRefused(f"{chain.name}: none of {', '.join(keys)} is paused: nothing to unpause")
        return [GovernedCall(key, "unpause") for key in paused]

    return calls


def grant_role(role: str, account: str) -> CallsFor:
    name, holder = resolve_role(role), _address(account)
    return lambda chain: [
        GovernedCall(key, "grantRole", (role_id(name), holder)) for key in role_holders(chain.record, name)
    ]


def revoke_role(role: str, account: str) -> CallsFor:
    name, holder = resolve_role(role), _address(account)
    return lambda chain: [
        GovernedCall(key, "revokeRole", (role_id(name), holder)) for key in role_holders(chain.record, name)
    ]


def rotate_role(role: str, old: str, new: str) -> CallsFor:
    """One batch: grant ``new`` on every contract with the role, then revoke ``old`` (never a gap without one).
    Refused when ``old`` and ``new`` are one account (in any case): the grant changes nothing and the revocation
    takes the role away, the guardian's pause key say."""
    if _address(old) == _address(new):
        raise CatalogError(
            f"rotate {role}: the old and the new holder are the same account {_address(new)}: the batch would revoke "
            "the role it grants (use revoke to remove a holder)"
        )
    grant, revoke = grant_role(role, new), revoke_role(role, old)
    return lambda chain: [*grant(chain), *revoke(chain)]


class BatchEntry(BaseModel):
    """One call of a batch file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    contract: str
    function: str
    args: list[Any] = []


_BATCH = TypeAdapter(list[BatchEntry])


def batch_file(path: Path) -> CallsFor:
    """A batch from a JSON file: ``[{"contract": "CreditAggregator", "function": "setGracePeriod", "args":
    [86400]}, ...]`` (hex strings for bytes arguments). In production every address among the calls' arguments is
    checked as ``grant``, ``rotate`` and ``settlement-address`` check the holder they name
    (``service.production_guard``): a batch may grant a role (``grantRole``'s account), set a settlement address,
    or name any other holder, and none may be one of anvil's public devnet accounts."""
    try:
        entries = _BATCH.validate_json(path.read_bytes())
    except OSError as err:
        raise CatalogError(f"cannot read batch file {path}: {err}") from err
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in err.errors())
        raise CatalogError(f"batch file {path} is not a list of calls: {problems}") from err
    governed = [
        GovernedCall(entry.contract, entry.function, tuple(_argument(arg) for arg in entry.args)) for entry in entries
    ]
    guard(
        role_holders={
            f"batch call {n} ({call.key}.{call.function}) argument {place}": address
            for n, call in enumerate(governed, 1)
            for place, address in _addresses(call.args)
        }
    )
    return lambda chain: list(governed)


def _addresses(args: Any, at: str = "") -> list[tuple[str, str]]:
    """(position, address) of every address among ``args``, in nested lists too (``2``, ``3.1``)."""
    found = []
    for n, value in enumerate(args, 1):
        place = f"{at}{n}"
        if isinstance(value, (list, tuple)):
            found.extend(_addresses(value, f"{place}."))
        elif isinstance(value, str) and is_address(value) and len(value) == 42:
            found.append((place, to_checksum_address(value)))
    return found


def combine(*parts: CallsFor) -> CallsFor:
    return lambda chain: [call for part in parts for call in part(chain)]


def _argument(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x"):
        if is_address(value) and len(value) == 42:
            return to_checksum_address(value)
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise CatalogError(f"{value!r} is neither an address nor hex bytes") from None
    return value


def _address(value: str) -> Any:
    if not is_address(value):
        raise CatalogError(f"not an address: {value!r}")
    return to_checksum_address(value)


_DECIMALS_ABI = [
    {
        "type": "function",
        "name": "decimals",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
        "stateMutability": "view",
    }
]
