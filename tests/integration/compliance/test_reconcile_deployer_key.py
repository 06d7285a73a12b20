"""The deployer's wiring ends with the deployment, on a real devnet and PostgreSQL: the deployments record keeps the
block of the deployer's handover to the Timelock, and a role granted with the deployer's key after it (the Timelock,
impersonated, gave the key the admin role back) is reported as on-chain but not recorded; the Timelock's own grant
is matched. The chain is reverted afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from compliance.reconcile import Category
from compliance.reconcile_chain import scope_for
from store.db import Database
from tests.contracts.harness import DEPLOYER, Harness
from tests.support.devnet import DeployedChain
from tests.support.reconcile import reconciled

pytestmark = pytest.mark.integration

ADMIN_ROLE, OPERATOR_ROLE = b"\x00" * 32, keccak(text="OPERATOR_ROLE")
STRANGER = to_checksum_address("0x" + "5e" * 20)


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_deployer_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_role_granted_with_the_deployers_key_after_the_handover_is_reported(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    handover = chain.record.handover_block
    assert handover is not None
    start = int(chain.w3.eth.block_number) + 1
    assert handover < start
    assert scope_for(chain.record, start, start).wiring_until == handover
    h = Harness(chain)
    timelock = chain.record.address("Timelock")
    with chain.snapshot():
        chain.w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
        chain.w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])  # type: ignore[arg-type]
        given_back = h.send(h.aggregator.functions.grantRole(ADMIN_ROLE, DEPLOYER.address), timelock)
        granted = h.send(h.aggregator.functions.grantRole(OPERATOR_ROLE, STRANGER), DEPLOYER)
        result = await reconciled(chain, database, start)

    assert [(item.category, item.tx_hash) for item in result.items] == [
        (Category.ONCHAIN_NOT_RECORDED, granted["transactionHash"].to_0x_hex())
    ]
    assert f"after the deployment handed over to the Timelock (block {handover})" in result.items[0].detail
    assert given_back["transactionHash"].to_0x_hex() not in {item.tx_hash for item in result.items}
