"""Helpers for the chain layer's integration tests: fresh anvils, a node behind one, a store, a token, a miner, an
event collector, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from web3 import Web3
from web3.contract import Contract

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.config import LocalChain
from chain.devnet import LOOPBACK, Devnet, free_port, start_devnet
from chain.errors import ChainError
from chain.events import EventBatch, EventReader, WatchedContract
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.base import Base
from store.chain import CHAIN_TABLES, SqlChainStore
from store.db import make_engine

log = logging.getLogger(__name__)

TOKEN_ARTIFACTS = ("Errors", "MockERC20")


@contextlib.contextmanager
def fresh_anvil(chain_id: int = 31337, name: str = "ethereum-local") -> Iterator[Devnet]:
    devnet = start_devnet(LocalChain(name=name, chain_id=chain_id, port=0), port=0)
    try:
        yield devnet
    finally:
        devnet.stop()


@asynccontextmanager
async def node_behind(anvil: Devnet) -> AsyncIterator[ChainClient]:
    """A client of a second node forked from ``anvil`` at its head now: the same blocks up to there, none of those
    mined on ``anvil`` after (an endpoint behind the one a checkpoint is read from)."""
    behind = start_devnet(LocalChain(name=anvil.name, chain_id=anvil.chain_id, port=0), port=0, fork_url=anvil.rpc_url)
    try:
        lagging = await ChainClient(behind.config(), timeout=5.0).connect()
        try:
            yield lagging
        finally:
            await lagging.close()
    finally:
        behind.stop()


def chain_store(url: str) -> tuple[SqlChainStore, Engine]:
    """A store whose chain tables are freshly (re)created."""
    engine = make_engine(url)
    Base.metadata.drop_all(engine, tables=list(CHAIN_TABLES))
    Base.metadata.create_all(engine, tables=list(CHAIN_TABLES))
    return SqlChainStore(sessionmaker(engine, expire_on_commit=False)), engine


async def rpc(client: ChainClient, method: str, *params: object) -> object:
    return await client.rpc(method, *params)


@asynccontextmanager
async def miner(client: ChainClient, interval: float = 0.1) -> AsyncIterator[None]:
    """Automine off, one block every ``interval`` seconds (interval mining under the test's control). A failed
    ``evm_mine`` (the node slow to answer on a loaded machine, a dropped keep-alive connection) is skipped: it would
    end the miner's task silently, and every intent not yet mined would wait for a block that never comes (the
    suspected cause of one flaky run of ``test_broadcast_batches``)."""
    await client.rpc("evm_setAutomine", False)

    async def mine() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await client.rpc("evm_mine")
            except ChainError as err:
                log.warning("evm_mine failed, mining on: %s", err)

    task = asyncio.create_task(mine())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.rpc("evm_setAutomine", True)


def manager(
    client: ChainClient, store: SqlChainStore, role: Role = Role.DEPLOYER, **settings: float
) -> TransactionManager:
    defaults: dict[str, float] = {"confirmations": 1, "poll_interval": 0.05, "stuck_after": 30.0}
    return TransactionManager(
        client,
        devnet_signer(role),
        store,
        settings=LifecycleSettings(**{**defaults, **settings}),  # type: ignore[arg-type]
        revert_artifacts=TOKEN_ARTIFACTS,
    )


async def deploy_token(txs: TransactionManager, key: str = "token") -> Contract:
    """Deploy a MockERC20 through the lifecycle (mining must be on: automine or ``miner``)."""
    artifact = load_artifact("MockERC20")
    receipt = await txs.submit_and_wait(key, Call.deploy(artifact, "Test", "TST", 18), within=60)
    assert receipt.contract_address is not None
    return Web3().eth.contract(address=receipt.contract_address, abi=artifact.abi)


def holder(index: int) -> str:
    """A deterministic recipient address per index (mints to distinct holders make every call distinct)."""
    return Web3.to_checksum_address(f"0x{index + 1:040x}")


class Collector:
    """An event reader's handler keeping every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[EventBatch] = []

    async def __call__(self, batch: EventBatch) -> None:
        self.batches.append(batch)

    @property
    def mints(self) -> list[int]:
        return [int(e.args["value"]) for b in self.batches for e in b.events if e.event == "Transfer"]

    @property
    def tx_hashes(self) -> set[str]:
        return {e.tx_hash for b in self.batches for e in b.events}


async def assert_waited_for(node: ChainClient, store: SqlChainStore, contract: WatchedContract) -> None:
    """A reader of ``contract`` on ``node``, a node below the stored checkpoint on its branch, delivers nothing and
    rolls nothing back: it waits for the node."""
    seen = Collector()
    follower = EventReader(node, store, [contract], confirmations=1)
    assert await follower.poll(seen) == 0
    assert follower.reorgs == []
    assert seen.batches == []
    assert await store.run(lambda repo: repo.reorgs(node.config.chain_id)) == []


class TcpProxy:
    """A loopback TCP proxy in front of an RPC URL that a test can cut (close every connection and stop
    listening: connections are refused) and restore on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port, reuse_address=True)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        with contextlib.suppress(asyncio.CancelledError):  # the server was cut under this connection
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()
