"""Each sending role has its own transaction manager per chain, sending from its own account: the guardian's
``pause`` passes the contract's role check on ``msg.sender`` where the relayer's is refused; a role without a key has
no sender and says which setting is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregator.platform import connect_chain
from api.bootstrap import role_signers
from api.settings import Settings
from chain.errors import ConfigurationError, GasEstimationFailed
from chain.signers import Role, devnet_account, devnet_signer
from chain.transactions import Call
from store.chain import SqlChainStore
from store.db import Database
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration


async def test_each_role_sends_from_its_own_account(ethereum_local: DeployedChain, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'roles.db'}")
    database.migrate()
    store = SqlChainStore(database.sessions)
    runtime = await connect_chain(
        ethereum_local.config,
        ethereum_local.record,
        devnet_signer(Role.RELAYER),
        store,
        role_signers(Settings(environment="local")),
    )
    try:
        assert runtime.sender(Role.RELAYER) is runtime.transactions
        senders = {
            "operator": runtime.operator,
            "guardian": runtime.guardian,
            "keeper": runtime.keeper,
            "audit_anchor": runtime.audit_anchor,
        }
        assert {name: m.signer.address for name, m in senders.items()} == {
            "operator": devnet_account(4).address,
            "guardian": devnet_account(5).address,
            "keeper": devnet_account(10).address,
            "audit_anchor": devnet_account(11).address,
        }
        aggregator: Any = runtime.aggregator()
        with pytest.raises(GasEstimationFailed, match="AccessControlUnauthorizedAccount"):
            await runtime.transactions.submit_and_wait("roles-test:relayer-pause", Call.function(aggregator, "pause"))
        receipt = await runtime.guardian.submit_and_wait(
            "roles-test:guardian-pause", Call.function(aggregator, "pause"), within=30
        )
        assert receipt.status == "confirmed"
        assert await aggregator.functions.paused().call() is True
    finally:
        await runtime.close()
        database.dispose()


async def test_a_role_without_a_key_has_no_sender(ethereum_local: DeployedChain, tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'roles.db'}")
    database.migrate()
    runtime = await connect_chain(
        ethereum_local.config,
        ethereum_local.record,
        devnet_signer(Role.RELAYER),
        SqlChainStore(database.sessions),
        {Role.OPERATOR: devnet_signer(Role.OPERATOR)},
    )
    try:
        assert runtime.operator.signer.address == devnet_account(4).address
        with pytest.raises(ConfigurationError, match="CREDITMESH_KEEPER_KEY"):
            runtime.keeper  # noqa: B018 - the property raises
    finally:
        await runtime.close()
        database.dispose()
