"""The API process's servicing workers (``CREDITMESH_WORKERS=keeper,defaulter``) start on a chain with the keeper's
and the operator's accounts, take their leases and keep running until stopped, which releases the leases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from aggregator.platform import connect_chain
from api.settings import Settings
from api.workers import Workers, default_jobs, keepers
from chain.signers import Role, devnet_signer
from store.chain import SqlChainStore
from store.db import Database
from store.leases import LeaseRow
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_keeper_and_defaulter_workers_run_under_their_leases(
    own_chain: DeployedChain, servicing_db: Database, tmp_path: Path
) -> None:
    signers = {role: devnet_signer(role) for role in (Role.KEEPER, Role.OPERATOR)}
    store = SqlChainStore(servicing_db.sessions)
    chain = await connect_chain(own_chain.config, own_chain.record, devnet_signer(Role.RELAYER), store, signers)
    settings = Settings(
        data_dir=tmp_path, workers="keeper,defaulter", keeper_interval_seconds=0.2, defaulter_interval_seconds=0.2
    )
    try:
        assert [k.chain_id for k in keepers(settings, servicing_db, {chain.name: chain})] == [own_chain.chain_id]
        assert len(default_jobs(settings, servicing_db, {chain.name: chain})) == 1
        workers = Workers().start(settings, servicing_db, {chain.name: chain})
        try:
            for _ in range(50):
                with servicing_db.unit_of_work() as uow:
                    held = {row.kind for row in uow.session.scalars(select(LeaseRow)) if row.holder is not None}
                if {"keeper", "defaulter"} <= held:
                    break
                await asyncio.sleep(0.2)
            assert {"keeper", "defaulter"} <= held
            await asyncio.sleep(0.5)  # a few rounds
            assert sorted(workers.running) == [f"defaulter-{chain.chain_id}", f"keeper-{chain.chain_id}"]
        finally:
            await workers.stop()
        with servicing_db.unit_of_work() as uow:
            released = {row.kind: row.holder for row in uow.session.scalars(select(LeaseRow))}
        assert released.get("keeper") is None
        assert released.get("defaulter") is None
    finally:
        await chain.close()
