"""``creditmesh admin`` across chains and their RPCs: the guardian's pause everywhere, emergency commands that try
every chain whatever fails on the others, an RPC of another chain refused before anything is sent, pools registered
after the deployment, and Timelock reads in the block ranges an RPC allows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, Web3Exception, Web3RPCError
from web3.types import RPCEndpoint

from chain.revert import decode_revert
from chain.timelock import read_operations, timelock_contract
from contracts.governance.pools import with_registered_pools
from tests.contracts.harness import BORROWERS, DEPLOYER, USDC, Harness, Reverted
from tests.integration.governance.support import GUARDIAN, Admin, aggregator_paused, grace_period
from tests.support.pools import deploy_pool

pytestmark = pytest.mark.integration


def test_pause_everywhere_blocks_opening_but_not_repaying_and_only_the_timelock_unpauses(admin: Admin) -> None:
    harnesses = [Harness(chain) for chain in admin.chains.values()]
    borrower = BORROWERS[3]
    loans = []
    for harness in harnesses:
        harness.fund(borrower.address, usdc=100 * USDC, weth=10**18)
        harness.approve_all(borrower.address)
        loans.append(harness.open_loan(borrower)[0])

    out = admin("pause")

    assert out.count("CreditAggregator.pause: tx 0x") == 3
    for harness, loan_id in zip(harnesses, loans, strict=True):
        with pytest.raises(Reverted) as reverted:
            harness.open_loan(borrower)
        assert reverted.value.error is not None
        assert reverted.value.error.name == "EnforcedPause"
        harness.send(harness.aggregator.functions.repay(loan_id, 10 * USDC), borrower)
    # the guardian cannot unpause: only the Timelock (DEFAULT_ADMIN_ROLE) can
    for harness in harnesses:
        with pytest.raises(ContractCustomError) as refused:
            harness.aggregator.functions.unpause().call({"from": GUARDIAN.address})
        decoded = decode_revert(refused.value.data, ("CreditAggregator",))
        assert decoded is not None
        assert decoded.name == "AccessControlUnauthorizedAccount"
    assert "already paused" in admin("pause")

    admin("propose", "unpause", "--via", "key")
    admin.advance(3)
    for scheduled in admin("list", "--state", "ready").splitlines():
        match = re.match(r"\[(\S+)\] (0x[0-9a-f]{64}) ready", scheduled)
        if match:
            admin("--chains", match.group(1), "execute", match.group(2))
    assert not any(h.aggregator.functions.paused().call() for h in harnesses)


def test_production_refuses_devnet_chains_and_keys(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    refused = admin.refused("pause")
    assert "devnet chain id 31337" in refused
    assert all(not h.functions.paused().call() for h in (c.contract("CreditAggregator") for c in admin.chains.values()))


def test_an_rpc_serving_another_chain_is_refused_before_anything_is_sent(admin: Admin) -> None:
    """ethereum-local's RPC pointed at polygon's node: `pause` paused polygon and recorded it under ethereum-local."""
    admin.point("ethereum-local", admin.chains["polygon-local"].devnet.rpc_url)
    sent = {name: chain.w3.eth.get_transaction_count(DEPLOYER.address) for name, chain in admin.chains.items()}

    paused = admin.refused("--chains", "ethereum-local", "pause", "--reason", "incident")
    proposed = admin.refused("propose", "grace-period", "86400", "--via", "key")

    for refusal in (paused, proposed):
        assert "(given for ethereum-local) serves chain id 31338, configured 31337: refusing to connect" in refusal
    assert not any(aggregator_paused(chain) for chain in admin.chains.values())
    assert admin.actions() == []
    assert {name: c.w3.eth.get_transaction_count(DEPLOYER.address) for name, c in admin.chains.items()} == sent


def test_pause_tries_every_chain_and_names_each_that_failed(admin: Admin) -> None:
    """ethereum-local's RPC down and the guardian without its role on polygon-local's CreditAggregator: `pause` used to
    stop at the first chain with a ConnectionError traceback, so no chain was paused."""
    polygon = Harness(admin.chains["polygon-local"])
    polygon.govern(polygon.aggregator, "revokeRole", keccak(text="GUARDIAN_ROLE"), GUARDIAN.address)
    admin.point("ethereum-local", "http://127.0.0.1:9")

    with pytest.raises(SystemExit) as refused:
        admin("pause", "--reason", "incident")
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert "[ethereum-local] pause FAILED: RPC http://127.0.0.1:9 does not answer (ConnectionError)" in out.out
    assert "[polygon-local] CollateralManager.pause: tx 0x" in out.out
    assert "[polygon-local] pause FAILED: CreditAggregator.pause: " in out.out
    assert out.out.count("[arbitrum-local] ") == 3  # CreditAggregator, CollateralManager, LendingPool:USDC
    (line,) = out.err.splitlines()
    assert line.startswith("refused: pause failed on 2 of 3 chain(s) (ethereum-local: RPC http://127.0.0.1:9 ")
    assert "; polygon-local: CreditAggregator.pause: pause-CreditAggregator reverted: AccessControlUnauthorized" in line
    assert aggregator_paused(admin.chains["arbitrum-local"])
    assert not aggregator_paused(admin.chains["polygon-local"])
    assert polygon.pool.functions.paused().call()
    assert {(row.chain_name, row.contract) for row in admin.actions() if row.chain_name == "polygon-local"} == {
        ("polygon-local", "CollateralManager"),
        ("polygon-local", "LendingPool:USDC"),
    }


def test_cancel_by_key_tries_every_chain(admin: Admin) -> None:
    """Cancelling an operation everywhere stopped at the first chain that refused (here: one where the id was never
    scheduled), before the chain that has it."""
    proposed = admin("--chains", "polygon-local", "propose", "grace-period", "3600", "--via", "key")
    operation_id = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert operation_id is not None
    admin.point("arbitrum-local", "http://127.0.0.1:9")

    with pytest.raises(SystemExit) as refused:
        admin("cancel", operation_id.group(1))
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert re.search(rf"\[polygon-local\] cancelled {operation_id.group(1)}: tx 0x", out.out)
    (line,) = out.err.splitlines()
    assert line.startswith(f"refused: cancel failed on 2 of 3 chain(s) (ethereum-local: no operation {operation_id[1]}")
    assert "; arbitrum-local: RPC http://127.0.0.1:9 does not answer (ConnectionError))" in line
    (row,) = admin.rows()
    assert (row.chain_name, row.state) == ("polygon-local", "cancelled")


def test_a_pool_registered_after_the_deployment_is_governed_and_paused_with_the_rest(admin: Admin) -> None:
    """A pool the Timelock does not administer is refused registration; one it does, once registered, is reached by
    the guardian's grant and by `pause`. Before, every command took its targets from the deployments record alone,
    so `pause` left the new pool open, and a pool its deployer still administered was registered."""
    chain = admin.chains["ethereum-local"]
    h = Harness(chain)
    guardian_role = keccak(text="GUARDIAN_ROLE")
    kept = deploy_pool(h)  # its deployer administers it
    refused = admin.refused("--chains", chain.name, "propose", "register-pool", kept.address, "--via", "key")
    assert f"the Timelock does not administer pool {kept.address}" in refused

    pool = deploy_pool(h, admin=h.timelock.address)
    proposed = admin("--chains", chain.name, "propose", "register-pool", pool.address, "--via", "key")
    registered = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert registered is not None
    admin.advance(3)
    admin("--chains", chain.name, "execute", registered.group(1))
    assert h.aggregator.functions.poolId(pool.address).call() != 0

    proposed = admin("--chains", chain.name, "propose", "grant", "guardian", GUARDIAN.address, "--via", "key")
    assert f"LendingPool:{pool.address}.grantRole" in proposed
    granted = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert granted is not None
    admin.advance(3)
    admin("--chains", chain.name, "execute", granted.group(1))
    assert pool.functions.hasRole(guardian_role, GUARDIAN.address).call()

    out = admin("--chains", chain.name, "pause", "--reason", "incident")
    assert f"LendingPool:{pool.address}.pause: tx 0x" in out
    assert pool.functions.paused().call()
    assert not kept.functions.paused().call(), "an unregistered pool is not ours to pause"


def test_a_pause_reaches_the_recorded_contracts_when_the_registered_pools_cannot_be_read(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An RPC provider that refuses the PoolRegistered read (a block range too wide, say) is a warning, never a
    refusal: the guardian's pause must reach what the deployments record lists."""

    def refused(w3: object, record: object) -> object:
        raise Web3Exception("query exceeds max block range 10000")

    monkeypatch.setattr("api.cli._admin_chains.with_registered_pools", refused)
    out = admin("--chains", "ethereum-local", "pause", "--reason", "incident")
    assert "[ethereum-local] LendingPool:USDC.pause: tx 0x" in out
    assert "warning: ethereum-local: pools registered after the deployment not read (Web3Exception" in out
    assert aggregator_paused(admin.chains["ethereum-local"])


def test_the_timelock_is_read_in_ranges_an_rpc_allows(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    """An RPC that refuses an eth_getLogs spanning more blocks than it allows: the Timelock's operations are still
    listed. Each event's whole history was read in one call, which such an RPC refused, and with it list, execute
    and cancel on an old Timelock."""
    chain = admin.chains["ethereum-local"]
    admin.hold_pending(chain.name)  # the 25 blocks below are mined by the clock: within 2 s only on an idle machine
    proposed = admin("--chains", chain.name, "propose", "grace-period", "7200", "--via", "key")
    scheduled = re.search(r"scheduled (0x[0-9a-f]{64})", proposed)
    assert scheduled is not None
    for _ in range(25):
        chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
    w3 = Web3(Web3.HTTPProvider(chain.config.rpc_urls[0]))
    get_logs, allowed = w3.eth.get_logs, 8

    def limited(params: Any) -> Any:
        last = w3.eth.block_number if params.get("toBlock", "latest") == "latest" else int(params["toBlock"])
        if last - int(params["fromBlock"]) + 1 > allowed:
            raise Web3RPCError("query exceeds the block range this node allows")
        return get_logs(params)

    monkeypatch.setattr(w3.eth, "get_logs", limited)
    monkeypatch.setattr("chain.timelock.LOG_RANGE", allowed, raising=False)
    timelock = timelock_contract(w3, chain.record.address("Timelock"))
    listed = read_operations(timelock, chain.record.contracts["Timelock"].block)
    assert ("0x" + listed[-1].operation_id.hex(), listed[-1].state.value) == (scheduled.group(1), "pending")


def test_execute_by_id_executes_where_the_operation_is_ready_and_says_where_it_is_not(admin: Admin) -> None:
    """An id scheduled on ethereum-local (ready) and polygon-local (pending), never on arbitrum-local (its contracts
    have other addresses, so the same proposal has another id there): `execute ID` over every chain stopped at the
    first chain where it was not ready or not found, with exit status 1 whatever it had executed before."""
    propose = ("propose", "grace-period", "3600", "--via", "key", "--salt", "0x" + "3c" * 32)
    scheduled = re.search(r"scheduled (0x[0-9a-f]{64})", admin("--chains", "ethereum-local", *propose))
    assert scheduled is not None
    operation_id = scheduled.group(1)
    admin.advance(3)
    admin.hold_pending("polygon-local")  # an hour's delay there: pending however long the commands take
    assert f"scheduled {operation_id}" in admin("--chains", "polygon-local", *propose)  # the same addresses there

    out = admin("execute", operation_id)

    assert re.search(rf"\[ethereum-local\] executed {operation_id}: tx 0x[0-9a-f]{{64}}", out)
    assert f"[polygon-local] not ready: operation {operation_id} is pending until " in out
    assert f"[arbitrum-local] not found: no operation {operation_id} was ever scheduled on its Timelock" in out
    summary = f"operation {operation_id}: scheduled on ethereum-local, polygon-local (not on arbitrum-local); executed"
    assert f"{summary} on ethereum-local" in out
    grace = {name: grace_period(chain) for name, chain in admin.chains.items()}
    assert grace == {"ethereum-local": 3600, "polygon-local": 7 * 86_400, "arbitrum-local": 7 * 86_400}

    nowhere = admin.refused("execute", operation_id)  # done on one chain, pending on another: executed on none

    assert nowhere.startswith(f"refused: operation {operation_id} executed on none of 3 chain(s) (ethereum-local: ")
    assert f"ethereum-local: not ready: operation {operation_id} is done; executing now reverts with " in nowhere
    assert f"; polygon-local: not ready: operation {operation_id} is pending until " in nowhere
    assert "; arbitrum-local: not found: no operation " in nowhere
    admin.advance(3_601)
    out = admin("execute", operation_id)
    assert re.search(rf"\[polygon-local\] executed {operation_id}: tx 0x", out)
    assert f"{summary} on polygon-local" in out
    assert grace_period(admin.chains["polygon-local"]) == 3600
    assert {(row.chain_name, row.state) for row in admin.rows()} == {
        ("ethereum-local", "done"),
        ("polygon-local", "done"),
    }


def test_execute_by_id_exits_non_zero_when_executing_reverts_on_one_chain(admin: Admin) -> None:
    """The same unpause scheduled on ethereum-local and polygon-local, where another operation has unpaused
    polygon-local since: it executes on ethereum-local, reverts on polygon-local, and the exit status says so."""
    both = ("--chains", "ethereum-local,polygon-local")
    admin(*both, "pause")
    proposed = admin(*both, "propose", "unpause", "--via", "key", "--salt", "0x" + "a1" * 32)
    (operation_id,) = set(re.findall(r"scheduled (0x[0-9a-f]{64})", proposed))
    other = admin("--chains", "polygon-local", "propose", "unpause", "--via", "key", "--salt", "0x" + "b2" * 32)
    admin.advance(3)
    admin("--chains", "polygon-local", "execute", re.findall(r"scheduled (0x[0-9a-f]{64})", other)[0])

    with pytest.raises(SystemExit) as refused:
        admin("execute", operation_id)
    out = admin.capsys.readouterr()

    assert refused.value.code == 1
    assert re.search(rf"\[ethereum-local\] executed {operation_id}: tx 0x", out.out)
    assert "[polygon-local] execute FAILED: execute reverted: ExpectedPause()" in out.out
    assert f"[arbitrum-local] not found: no operation {operation_id}" in out.out
    assert out.err == "refused: execute failed on 1 of 3 chain(s) (polygon-local: execute reverted: ExpectedPause())\n"
    assert not aggregator_paused(admin.chains["ethereum-local"])


def test_the_registered_pools_cost_one_view_per_command_when_there_are_none_to_add(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every admin command read one poolId view per recorded pool besides poolCount: the deployment's own
    registration steps say which recorded pools are registered (a pool is never deregistered)."""
    chain = admin.chains["ethereum-local"]
    w3 = Web3(Web3.HTTPProvider(chain.config.rpc_urls[0]))
    requests: list[str] = []
    make_request = w3.provider.make_request

    def counted(method: RPCEndpoint, params: Any) -> Any:
        requests.append(method)
        return make_request(method, params)

    monkeypatch.setattr(w3.provider, "make_request", counted)
    assert with_registered_pools(w3, chain.record) is chain.record
    assert [method for method in requests if method != "eth_chainId"] == ["eth_call"]  # poolCount
    forgotten = chain.record.model_copy(update={"steps": [s for s in chain.record.steps if "register-pool" not in s]})
    assert with_registered_pools(w3, forgotten) is forgotten  # a lost step: the events are read, nothing added
    assert "eth_getLogs" in requests
