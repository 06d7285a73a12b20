"""A deployment's role holders as its configuration asks for them, against the deployed contracts', read on chain.

``creditmesh admin deploy`` is idempotent: a re-run skips every recorded step, so a configuration naming other role
holders (another guardian, relayer or signer, other Timelock proposers, other Safe owners) than the recorded
deployment would change nothing — silently. Before a re-run sends anything, ``role_differences`` compares what the
configuration asks for with the chain, for every part the recorded deployment has done (a deployment interrupted
part-way is finished, not refused): each requested holder must hold its role on the contracts the deployment gave it
on; a Timelock proposer the deployment made and the configuration no longer lists must no longer be one; the Safe
must be the configured one, or have the configured owners and threshold. A holder changed through governance since
(``propose rotate``) and written into the configuration is no difference. The present holders are named from the
role's ``RoleGranted`` events only when there is a difference (an identical re-run reads one view per role)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.safe import read_safe, safe_contract
from contracts.deploy import AUDIT_ANCHOR_KEY, POOL_ASSETS, SAFE_KEY, pool_key
from contracts.deploy_config import ChainDeployConfig, DeployConfigError

LOG_RANGE = 10_000  # blocks an eth_getLogs spans here (what hosted RPC providers commonly allow)
PROPOSER_ROLE = keccak(text="PROPOSER_ROLE")
CANCELLER_ROLE = keccak(text="CANCELLER_ROLE")

# The configuration's role holder (its [roles] key) → the role it holds.
ROLES: dict[str, str] = {
    "relayer": "RELAYER_ROLE",
    "quote_signer": "QUOTE_SIGNER_ROLE",
    "operator": "OPERATOR_ROLE",
    "guardian": "GUARDIAN_ROLE",
    "risk_signer": "RISK_SIGNER_ROLE",
    "audit_anchor": "ANCHOR_ROLE",
}
# Where ``contracts/deploy.py`` gives each role: (the configuration's key, record key, the step granting it, or None
# when the contract's constructor does). Checked only once the record has the step (or the contract).
GRANTS: tuple[tuple[str, str, str | None], ...] = (
    ("relayer", "CreditAggregator", "grant-relayer"),
    ("quote_signer", "CreditAggregator", "grant-quote-signer"),
    ("operator", "CreditAggregator", "grant-operator"),
    ("guardian", "CreditAggregator", "grant-guardian"),
    ("guardian", "CollateralManager", "grant-guardian-manager"),
    *(("guardian", pool_key(asset), f"grant-guardian-pool-{asset}") for asset in POOL_ASSETS),
    ("risk_signer", "CreditScoringOracle", None),
    ("audit_anchor", AUDIT_ANCHOR_KEY, None),
)


class RoleHoldersDiffer(DeployConfigError):
    """A re-run of a deployment whose configuration names other role holders than the deployed contracts have: a
    re-run changes no role of a deployed contract; governance does."""


@dataclass(frozen=True, slots=True)
class RoleDifference:
    """One role holder the configuration asks for that the chain does not have, and how governance changes it."""

    what: str
    how: str

    def __str__(self) -> str:
        return f"{self.what} (change it through governance: {self.how})"


def role_differences(w3: Web3, record: DeploymentRecord, config: ChainDeployConfig) -> list[RoleDifference]:
    """What ``config`` asks for that the chain's deployed contracts (those ``record`` lists with code) do not have."""
    if not record.contracts:
        return []
    contracts = _Contracts(w3, record)
    return [*_role_grants(contracts, config), *_proposers(contracts, config), *_safe(contracts, config)]


class _Contracts:
    """The record's contracts on chain, each read once; a contract without code (a chain reset) is skipped."""

    def __init__(self, w3: Web3, record: DeploymentRecord) -> None:
        self.w3, self.record = w3, record
        self._deployed: dict[str, Contract | None] = {}

    def get(self, key: str) -> Contract | None:
        if key not in self._deployed:
            deployed = self.record.contracts.get(key)
            has_code = deployed is not None and bool(self.w3.eth.get_code(deployed.address))
            self._deployed[key] = None
            if deployed is not None and has_code:
                abi = load_artifact(deployed.artifact).abi
                self._deployed[key] = self.w3.eth.contract(address=deployed.address, abi=abi)
        return self._deployed[key]

    def holders(self, key: str, role: bytes) -> list[ChecksumAddress]:
        """Who holds ``role`` on ``key`` now: the accounts of its ``RoleGranted`` events (from the contract's
        deployment block, in ranges of ``LOG_RANGE`` blocks) that still hold it."""
        contract = self.get(key)
        if contract is None:
            return []
        head = int(self.w3.eth.block_number)
        granted: dict[ChecksumAddress, None] = {}
        for start in range(self.record.contracts[key].block, head + 1, LOG_RANGE):
            logs = contract.events.RoleGranted().get_logs(
                from_block=start, to_block=min(start + LOG_RANGE - 1, head), argument_filters={"role": role}
            )
            granted.update((to_checksum_address(log["args"]["account"]), None) for log in logs)
        return [account for account in granted if contract.functions.hasRole(role, account).call()]


def _role_grants(contracts: _Contracts, config: ChainDeployConfig) -> list[RoleDifference]:
    missing: dict[str, list[str]] = {}
    for holder, key, step in GRANTS:
        contract = contracts.get(key)
        if contract is None or (step is not None and step not in contracts.record.steps):
            continue
        if not contract.functions.hasRole(keccak(text=ROLES[holder]), getattr(config.roles, holder)).call():
            missing.setdefault(holder, []).append(key)
    differences = []
    for holder, keys in missing.items():
        role, requested = ROLES[holder], getattr(config.roles, holder)
        present = _unique(account for key in keys for account in contracts.holders(key, keccak(text=role)))
        name = holder.replace("_", "-")
        held = f"held by {', '.join(present)}" if present else "held by no one"
        how = (
            f"`creditmesh admin propose rotate {name} {present[0]} {requested}`"
            if len(present) == 1
            else f"`creditmesh admin propose grant {name} {requested}`, then `revoke` the others"
        )
        differences.append(
            RoleDifference(f"{name}: {requested} does not hold {role} on {', '.join(keys)} ({held})", how)
        )
    return differences


def _proposers(contracts: _Contracts, config: ChainDeployConfig) -> list[RoleDifference]:
    """The Timelock's proposers (and cancellers): the Safe and the extra proposers the configuration lists, and no
    other the deployment made one."""
    timelock = contracts.get("Timelock")
    if timelock is None:
        return []
    recorded_safe = contracts.record.contracts.get(SAFE_KEY)
    safe = config.safe.address or (None if recorded_safe is None else recorded_safe.address)
    requested = [*([safe] if safe is not None else []), *config.roles.extra_proposers]
    constructor_args = contracts.record.contracts["Timelock"].constructor_args
    made = [to_checksum_address(account) for account in constructor_args[1]] if len(constructor_args) > 1 else []
    how = (
        "a Timelock operation of Timelock.grantRole / revokeRole of PROPOSER_ROLE and CANCELLER_ROLE "
        "(`creditmesh admin propose batch FILE`)"
    )
    differences = []
    for account in requested:
        lacks = [name for name, role in _TIMELOCK_ROLES if not timelock.functions.hasRole(role, account).call()]
        if lacks:
            differences.append(RoleDifference(f"Timelock: {account} is no {' or '.join(lacks)}", how))
    for account in made:
        if account not in requested and timelock.functions.hasRole(PROPOSER_ROLE, account).call():
            differences.append(
                RoleDifference(f"Timelock: {account} is a proposer the configuration does not list", how)
            )
    return differences


_TIMELOCK_ROLES = (("proposer", PROPOSER_ROLE), ("canceller", CANCELLER_ROLE))


def _safe(contracts: _Contracts, config: ChainDeployConfig) -> list[RoleDifference]:
    """The Safe the configuration names, or the owners and threshold it gives the Safe the deployment made."""
    recorded = contracts.record.contracts.get(SAFE_KEY)
    if recorded is None:
        return []
    if config.safe.address is not None:
        if config.safe.address == recorded.address:
            return []
        what = f"Safe: the deployment's is {recorded.address}, the configuration names {config.safe.address}"
        return [RoleDifference(what, "the Timelock's proposers (the Safe is one): `creditmesh admin propose batch`")]
    if not contracts.w3.eth.get_code(recorded.address):
        return []
    state = read_safe(safe_contract(contracts.w3, recorded.address))
    differences = []
    how = "a transaction of the Safe's owners (addOwnerWithThreshold, removeOwner, swapOwner, changeThreshold)"
    unlisted = [owner for owner in state.owners if owner not in config.safe.owners]
    absent = [owner for owner in config.safe.owners if owner not in state.owners]
    if unlisted or absent:
        parts = [f"{', '.join(absent)} (in the configuration) not an owner"] if absent else []
        parts += [f"{', '.join(unlisted)} an owner the configuration does not list"] if unlisted else []
        differences.append(RoleDifference(f"Safe {recorded.address}: {' and '.join(parts)}", how))
    if state.threshold != config.safe.threshold:
        what = (
            f"Safe {recorded.address}: its threshold is {state.threshold}, the configuration's {config.safe.threshold}"
        )
        differences.append(RoleDifference(what, how))
    return differences


def _unique(accounts: Iterable[ChecksumAddress]) -> list[ChecksumAddress]:
    return list(dict.fromkeys(accounts))
