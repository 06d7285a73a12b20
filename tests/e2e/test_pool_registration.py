"""A pool registered for quoting through the API, against the platform's running processes and the session's devnets:
it must be a pool the chain's CreditAggregator has registered (an offer naming any other pool is refused at every
accept: ``UnknownPool``), and one no longer registered there is declined at quote time, the reason named; its
registration's capabilities decide whom it is asked for, as a lender's do; and a pool another provider quotes for
is not registered twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from chain.artifacts import load_artifact
from chain.signers import devnet_account
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e

CHAIN = "ethereum-local"
PROBLEMS = "https://creditmesh.dev/problems/"
REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 30,
    "collateral": {"asset": "WETH", "amount": "1.0"},
    "preferred_chains": [CHAIN],
}


def _deploy_pool(chain: DeployedChain, aggregator: str, liquidity: int) -> str:
    """A USDC LendingPool lending for ``aggregator``, funded with ``liquidity``; not registered with any aggregator."""
    w3 = chain.w3
    owner = w3.eth.accounts[0]
    artifact = load_artifact("LendingPool")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(
        chain.record.address("USDC"), "e2e pool", "ePOOL", owner, aggregator, 0, 0, 0, 8_000, 1_000, 0
    ).transact({"from": owner})
    pool = str(w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])
    vault = w3.eth.contract(address=pool, abi=artifact.abi)  # type: ignore[call-overload]
    token = chain.contract("USDC")
    w3.eth.wait_for_transaction_receipt(token.functions.mint(owner, liquidity).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(token.functions.approve(pool, liquidity).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(vault.functions.deposit(liquidity, owner).transact({"from": owner}))
    return pool


def _pool_id_slot(chain: DeployedChain, pool: str, pool_id: int) -> int:
    """The storage slot of ``poolId[pool]`` in the CreditAggregator: the mapping's slot found by reading each
    candidate's ``keccak(pool . slot)`` for the pool's id."""
    aggregator = chain.record.address("CreditAggregator")
    key = bytes.fromhex(pool[2:]).rjust(32, b"\0")
    for index in range(128):
        slot = int.from_bytes(keccak(key + index.to_bytes(32, "big")), "big")
        if int.from_bytes(chain.w3.eth.get_storage_at(aggregator, slot), "big") == pool_id:
            return slot
    raise AssertionError("poolId's storage slot not found")


def _set_pool_id(chain: DeployedChain, slot: int, pool_id: int) -> None:
    """Write ``poolId[pool]`` (the aggregator has no removal yet: what governance removing the pool would leave)
    and mine a block, so that the platform's next request reads it at a new head."""
    value = "0x" + pool_id.to_bytes(32, "big").hex()
    aggregator = chain.record.address("CreditAggregator")
    chain.w3.provider.make_request("anvil_setStorageAt", [aggregator, hex(slot), value])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def chain(devnet_chains: dict[str, DeployedChain]) -> Iterator[DeployedChain]:
    """ethereum-local, the pools this module deploys and registers with its CreditAggregator taken back afterwards
    (the admin commands' tests count the aggregator's pools): reverted to its state before the module, then mined
    past every block read meanwhile, as after a reorganisation, so that nothing the platform keeps by block number
    is of a replaced block (``chain.views.BlockViews``). The module sends no transaction of the platform's."""
    chain = devnet_chains[CHAIN]
    with chain.snapshot():
        yield chain
        reached = chain.w3.eth.block_number
    chain.w3.provider.make_request("anvil_mine", [hex(reached - chain.w3.eth.block_number + 1)])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pool(chain: DeployedChain) -> str:
    """A funded USDC pool lending for the chain's CreditAggregator, which has not registered it (the Timelock's
    ``registerPool`` not executed yet)."""
    return _deploy_pool(chain, chain.record.address("CreditAggregator"), 1_000_000 * 10**6)


@pytest.fixture
def admin(shared_platform: RunningPlatform) -> Iterator[Any]:
    """The admin's client; every provider a test registered through it is deregistered after the test."""
    with shared_platform.client(shared_platform.admin_key) as client:
        yield client
        for provider in client.get("/v1/providers").json()["providers"]:
            if provider["source"] == "api" and not provider["deregistered"]:
                client.delete(f"/v1/providers/{provider['provider_id']}")


def _outcomes(platform: RunningPlatform, chain: DeployedChain, jurisdiction: str, **request: Any) -> dict[str, Any]:
    """Each provider's outcome (and its quotes) for a credit request of a new borrower in ``jurisdiction``."""
    borrower = Account.create()
    chain.contract("WETH").functions.mint(borrower.address, 2 * 10**18).transact({"from": devnet_account(0).address})
    key = platform.onboard(borrower.address, jurisdiction=jurisdiction)
    with platform.client(key) as client:
        created = client.post("/v1/credit-requests", json=REQUEST | request)
    assert created.status_code == 201, created.text
    body = created.json()
    quoted = {quote["provider_id"] for quote in body["quotes"]}
    return {
        o["provider_id"]: (o["outcome"], o["detail"], o["provider_id"] in quoted) for o in body["provider_outcomes"]
    }


def _registration(provider_id: str, address: str, **extra: Any) -> dict[str, Any]:
    config = {"chain": CHAIN, "asset": "USDC", "address": address}
    return {"provider_id": provider_id, "kind": "pool", "config": config} | extra


def test_a_pool_the_credit_aggregator_has_not_registered_is_refused_and_one_removed_since_is_declined(
    shared_platform: RunningPlatform, chain: DeployedChain, pool: str, admin: Any
) -> None:
    """A pool the CreditAggregator never registered was registered here, quoted at the lowest rate, ranked first and
    signed: every accept of it then failed with 422 chain-rejected (``UnknownPool``). Its registration is a 422 now
    until the Timelock's ``registerPool`` has executed, as is a pool lending for another aggregator; and a pool
    registered here that the chain no longer knows is declined at quote time, the reason named."""
    aggregator = chain.record.address("CreditAggregator")
    refused = admin.post("/v1/providers", json=_registration("e2e-unregistered", pool))
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == PROBLEMS + "invalid-registration"
    assert refused.json()["detail"].startswith(
        f"e2e-unregistered: the pool at {pool} on {CHAIN} is not registered with the CreditAggregator "
        f"({aggregator}: poolId 0): every accept of its offers would be refused on-chain (UnknownPool)"
    )
    elsewhere = devnet_account(5).address
    foreign = _deploy_pool(chain, elsewhere, 10**6)
    other = admin.post("/v1/providers", json=_registration("e2e-foreign", foreign))
    assert other.status_code == 422, other.text
    assert other.json()["detail"] == (
        f"e2e-foreign: the pool at {foreign} on {CHAIN} lends for the CreditAggregator {elsewhere}, not {CHAIN}'s "
        f"({aggregator}): its loans could never be opened"
    )
    assert {p["provider_id"] for p in admin.get("/v1/providers").json()["providers"]}.isdisjoint(
        {"e2e-unregistered", "e2e-foreign"}
    )

    pool_id = chain.register_pool(pool)  # the Timelock's operation executed
    created = admin.post("/v1/providers", json=_registration("e2e-registered", pool))
    assert created.status_code == 201, created.text
    assert _outcomes(shared_platform, chain, "US-FL")["e2e-registered"] == ("offered", "1 offer(s)", True)

    slot = _pool_id_slot(chain, pool, pool_id)
    _set_pool_id(chain, slot, 0)
    try:
        outcome = _outcomes(shared_platform, chain, "US-FL")["e2e-registered"]
    finally:
        _set_pool_id(chain, slot, pool_id)
    reason = f"the pool is not registered with the CreditAggregator on {CHAIN}: openLoan would refuse its offer"
    assert outcome == ("declined", f"{reason} (UnknownPool)", False)


def test_a_pools_capabilities_decide_whom_it_is_asked_for_as_a_lenders_do(
    shared_platform: RunningPlatform, chain: DeployedChain, pool: str, admin: Any
) -> None:
    """The capabilities of a pool's registration were validated and stored, then ignored: a pool an admin limited to
    New York borrowers, at most 100 USDC against USDC, was offered to a Florida borrower for 1,500 against WETH.
    They now decide whether it is asked, as an HTTP lender's do (``ineligible`` with the same reasons), within its
    own asset and chain: capabilities leaving those out are a 422."""
    chain.register_pool(pool)
    limited = {
        "assets": ["USDC"],
        "jurisdictions": ["US-TX"],
        "max_principal": str(1_000 * 10**6),
        "collateral_assets": ["WETH"],
    }
    created = admin.post("/v1/providers", json=_registration("e2e-limited", pool, capabilities=limited))
    assert created.status_code == 201, created.text
    florida = _outcomes(shared_platform, chain, "US-FL", amount="500.00")
    assert florida["e2e-limited"] == ("ineligible", "jurisdiction US-FL not served", False)
    assert florida[f"pool:{CHAIN}:USDC"][0] == "offered", "the deployment's pool is asked as before"
    texas = _outcomes(shared_platform, chain, "US-TX", amount="500.00")
    assert texas["e2e-limited"] == ("offered", "1 offer(s)", True)
    too_much = _outcomes(shared_platform, chain, "US-TX")
    assert too_much["e2e-limited"] == ("ineligible", "amount out of range", False)

    for field, values, detail in (
        ("assets", ["WETH"], "capabilities.assets (WETH) leave out the pool's asset USDC"),
        ("chains", ["polygon-local"], f"capabilities.chains (polygon-local) leave out the pool's chain {CHAIN}"),
    ):
        body = _registration(f"e2e-{field}", pool, capabilities={"assets": ["USDC"]} | {field: values})
        refused = admin.post("/v1/providers", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == f"e2e-{field}: {detail}"


def test_a_pool_another_provider_serves_is_refused_until_that_one_is_deregistered(
    shared_platform: RunningPlatform, chain: DeployedChain, pool: str, admin: Any
) -> None:
    """The same pool registered again under another provider id was quoted twice, each quote signed for the same
    liquidity. A pool that a provider from the deployment records or the API quotes for is a 409 now (whatever the
    address's case); a deregistered provider's pool may be registered again."""
    deployed = chain.record.address("LendingPool:USDC")
    twice = admin.post("/v1/providers", json=_registration("e2e-deployed-again", deployed))
    assert twice.status_code == 409, twice.text
    assert twice.json()["type"] == PROBLEMS + "pool-already-served"
    assert twice.json()["title"] == "The pool is already served by another provider"
    assert twice.json()["detail"] == (
        f"e2e-deployed-again: the pool at {deployed} on {CHAIN} is already served by provider "
        f"'pool:{CHAIN}:USDC' (from the deployment records)"
    )

    chain.register_pool(pool)
    first = admin.post("/v1/providers", json=_registration("e2e-first", pool))
    assert first.status_code == 201, first.text
    second = admin.post("/v1/providers", json=_registration("e2e-second", pool.lower()))
    assert second.status_code == 409, second.text
    assert second.json()["detail"].endswith("is already served by provider 'e2e-first' (deregister it first)")
    assert admin.delete("/v1/providers/e2e-first").status_code == 204
    again = admin.post("/v1/providers", json=_registration("e2e-second", pool.lower()))
    assert again.status_code == 201, again.text
    quoted = _outcomes(shared_platform, chain, "US-FL")
    assert quoted["e2e-second"][0] == "offered"
    assert "e2e-first" not in quoted, "deregistered: not asked"
