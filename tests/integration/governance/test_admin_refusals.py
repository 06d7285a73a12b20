"""``creditmesh admin`` refusing what would take a contract out of governance or out of service: a pool another
account still administers, a rotation that revokes the holder it grants, a batch granting a devnet key in
production, malformed operation ids and salts, and thresholds that would stop partial liquidations."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from chain.signers import devnet_account
from tests.contracts.harness import DEPLOYER, Harness
from tests.integration.governance.support import GUARDIAN, Admin
from tests.support.pools import deploy_pool

pytestmark = pytest.mark.integration
ADMIN_ROLE = b"\x00" * 32
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")


def test_a_pool_its_deployer_still_administers_beside_the_timelock_is_refused_registration(admin: Admin) -> None:
    """Only the Timelock's DEFAULT_ADMIN_ROLE was checked: a pool whose deployer granted the Timelock the role and
    kept its own was registered, and the deployer then unpaused it after the guardian's pause, outside governance."""
    chain = admin.chains["ethereum-local"]
    h = Harness(chain)
    pool = deploy_pool(h)
    h.send(pool.functions.grantRole(ADMIN_ROLE, h.timelock.address), DEPLOYER)
    sent = chain.w3.eth.get_transaction_count(DEPLOYER.address)

    refused = admin.refused("--chains", chain.name, "propose", "register-pool", pool.address, "--via", "key")

    assert f"the Timelock does not administer pool {pool.address} alone ({DEPLOYER.address} also hold" in refused
    assert chain.w3.eth.get_transaction_count(DEPLOYER.address) == sent
    # a stranger's pause key is refused too; once the deployer renounced and the stranger's key is revoked, accepted
    stranger = devnet_account(19).address
    h.send(pool.functions.grantRole(GUARDIAN_ROLE, stranger), DEPLOYER)
    h.send(pool.functions.grantRole(GUARDIAN_ROLE, GUARDIAN.address), DEPLOYER)
    h.send(pool.functions.renounceRole(ADMIN_ROLE, DEPLOYER.address), DEPLOYER)
    strangers = admin.refused("--chains", chain.name, "propose", "register-pool", pool.address, "--via", "key")
    assert f"{stranger} hold(s) GUARDIAN_ROLE on pool {pool.address}" in strangers
    assert GUARDIAN.address not in strangers, "the chain's guardian may hold the pool's pause key"
    h.govern(pool, "revokeRole", GUARDIAN_ROLE, stranger)

    proposed = admin("--chains", chain.name, "propose", "register-pool", pool.address, "--via", "key")

    assert f"CreditAggregator.registerPool(pool={pool.address})" in proposed


def test_rotating_a_role_to_the_account_that_holds_it_is_refused(admin: Admin) -> None:
    """`rotate guardian X x` (one account, another case) granted X then revoked it: executed, the guardian could no
    longer pause."""
    chain = admin.chains["ethereum-local"]
    guardian = GUARDIAN.address
    sent = chain.w3.eth.get_transaction_count(DEPLOYER.address)

    refused = admin.refused("--chains", chain.name, "propose", "rotate", "guardian", guardian, guardian.lower())

    assert f"the old and the new holder are the same account {guardian}" in refused
    assert chain.w3.eth.get_transaction_count(DEPLOYER.address) == sent
    assert admin.rows() == []
    assert chain.contract("CreditAggregator").functions.hasRole(GUARDIAN_ROLE, guardian).call()


@pytest.mark.parametrize(
    ("full_close", "min_leftover", "says"),
    [
        (0, 2**127, "min leftover value 170141183460469231731687303715884105728 is outside 0 to half the full close"),
        (100_000_000_000, 200_000_000_000, "min leftover value 200000000000 is outside 0 to half the full close value"),
        (10**14 + 1, 0, f"full close value {10**14 + 1} is outside 0 to 100000000000000"),
    ],
)
def test_liquidation_thresholds_that_would_stop_partial_liquidations_are_refused_before_any_chain_is_asked(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, full_close: int, min_leftover: int, says: str
) -> None:
    """`propose liquidation-thresholds 0 2^127` passed (a CollateralManager deployed before its bounds has none):
    executed, a position over the full-close value could only be liquidated partially and every partial
    liquidation reverted MustNotLeaveDust. Refused here before the simulation, for such a contract too."""

    def never(*args: object) -> object:
        raise AssertionError("the chain was asked")

    monkeypatch.setattr("contracts.governance.service.simulate", never)
    chain = admin.chains["ethereum-local"]
    sent = chain.w3.eth.get_transaction_count(DEPLOYER.address)

    refused = admin.refused(
        "--chains", chain.name, "propose", "liquidation-thresholds", str(full_close), str(min_leftover), "--via", "key"
    )

    assert says in refused
    assert chain.w3.eth.get_transaction_count(DEPLOYER.address) == sent
