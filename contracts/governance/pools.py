"""Pools registered with the CreditAggregator after the deployment: governance reaches them as it does the deployed
ones. The deployments record lists the pools the deployment made; ``creditmesh admin propose register-pool`` adds
others on-chain only. Read from the aggregator's ``PoolRegistered`` events, each such pool joins the chain's record
in memory under ``LendingPool:<address>`` (matching ``LendingPool:*``), so ``pause``, ``unpause``, the guardian's
grants and the pool parameters reach it. Before, every admin command took its targets from the file alone, and
``admin pause`` left a pool registered later open."""

from __future__ import annotations

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from chain.artifacts import load_artifact
from chain.deployment import DeployedContract, DeploymentRecord, registered_pool_key

POOL_ARTIFACT = "LendingPool"
LOG_RANGE = 10_000  # blocks an eth_getLogs spans here (what hosted RPC providers commonly allow)
AGGREGATOR_KEY = "CreditAggregator"
REGISTRATION_STEP = "register-pool-"  # contracts/deploy.py's step registering LendingPool:<asset>, with the asset


def with_registered_pools(w3: Web3, record: DeploymentRecord) -> DeploymentRecord:
    """``record`` with every pool the aggregator registered that it does not list (a copy; the file is untouched).
    The events are read only when the aggregator's ``poolCount`` says it registered more pools than the recorded
    deployment did (the usual case: that one view, on every admin command), in ranges of ``LOG_RANGE`` blocks: an RPC
    provider limits how many blocks one ``eth_getLogs`` may span."""
    if AGGREGATOR_KEY not in record.contracts:
        return record
    deployed = record.contracts[AGGREGATOR_KEY]
    aggregator = w3.eth.contract(address=deployed.address, abi=load_artifact(deployed.artifact).abi)
    listed = {contract.address for contract in record.contracts.values()}
    if int(aggregator.functions.poolCount().call()) <= _registered_by_deployment(record):
        return record
    added: dict[str, DeployedContract] = {}
    head = int(w3.eth.block_number)
    for start in range(deployed.block, head + 1, LOG_RANGE):
        logs = aggregator.events.PoolRegistered().get_logs(from_block=start, to_block=min(start + LOG_RANGE - 1, head))
        for log in logs:
            pool = to_checksum_address(log["args"]["pool"])
            if pool not in listed:
                added[registered_pool_key(pool)] = DeployedContract(
                    artifact=POOL_ARTIFACT,
                    address=pool,
                    tx_hash=log["transactionHash"].to_0x_hex(),
                    block=int(log["blockNumber"]),
                )
    return record.model_copy(update={"contracts": {**record.contracts, **added}}) if added else record


def _registered_by_deployment(record: DeploymentRecord) -> int:
    """How many of the record's pools its deployment registered, from its steps, not the chain (one ``poolId`` view
    per pool on every admin command, before): ``contracts/deploy.py`` records ``register-pool-<asset>`` for the pool
    ``LendingPool:<asset>`` once mined, and the aggregator never deregisters a pool. A step missing (a deployment
    interrupted between the transaction and the record) only undercounts, so the events are read: never a pool
    missed."""
    pools = [key for key, contract in record.contracts.items() if contract.artifact == POOL_ARTIFACT]
    return sum(1 for key in pools if f"{REGISTRATION_STEP}{key.partition(':')[2]}" in record.steps)


def role_members(contract: Contract, role: bytes, from_block: int) -> list[ChecksumAddress]:
    """Every account holding ``role`` on ``contract`` (an OpenZeppelin AccessControl, which does not enumerate its
    members): each account a ``RoleGranted`` event for ``role`` names since ``from_block`` that ``hasRole`` still
    says holds it (a grant revoked or renounced since is no longer a member), read in ranges of ``LOG_RANGE``
    blocks."""
    w3 = contract.w3
    head, named = int(w3.eth.block_number), dict[ChecksumAddress, None]()
    for start in range(from_block, head + 1, LOG_RANGE):
        logs = contract.events.RoleGranted().get_logs(
            from_block=start, to_block=min(start + LOG_RANGE - 1, head), argument_filters={"role": role}
        )
        for log in logs:
            named[to_checksum_address(log["args"]["account"])] = None
    return [account for account in named if contract.functions.hasRole(role, account).call()]
