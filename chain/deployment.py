"""Generic deployment machinery: deploy any artifact with constructor arguments, idempotently, and keep a
deployments record per chain (addresses, transaction hashes, blocks, compiler settings, source commit) that the
platform reads at start-up. It knows nothing about which contracts exist: ``contracts/deploy.py`` is the recipe."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, event
from sqlalchemy.orm import sessionmaker
from web3 import Web3
from web3.contract import Contract
from web3.datastructures import AttributeDict
from web3.exceptions import BlockNotFound
from web3.types import TxReceipt

from chain.artifacts import PROJECT_ROOT, Artifact, load_artifact
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.errors import (
    ChainIdMismatch,
    ConfigurationError,
    GasEstimationFailed,
    IntentConflict,
    TransactionReverted,
)
from chain.signers import Signer
from chain.transactions import Call, LifecycleSettings, Receipt, TransactionManager
from chain.types import Nonce
from store.base import Base
from store.chain import CHAIN_TABLES, DROPPED, FAILED, REVERTED, SqlChainStore
from store.db import make_engine


def registered_pool_key(pool: str) -> str:
    """The key, beside a deployments record's, of a pool the CreditAggregator registered after the deployment (the
    admin commands govern it under it, the reconciler names it so)."""
    return f"LendingPool:{to_checksum_address(pool)}"


class DeployedContract(BaseModel):
    artifact: str
    address: ChecksumAddress
    tx_hash: str
    block: int
    constructor_args: list[Any] = Field(default_factory=list)
    compiler: dict[str, Any] = Field(default_factory=dict)


#: the parameter listing the deployment's tokens: platform asset name → ``TokenListing`` (both profiles write it)
TOKENS_PARAMETER = "tokens"
#: a production record's configured token addresses alone, as written before the listings were recorded
TOKEN_ADDRESSES_PARAMETER = "tokenAddresses"  # noqa: S105 - a parameter's name, not a secret


class TokenListing(BaseModel):
    """A token the deployment lists, under the platform's name for it (its key in the record's ``tokens``): the
    token's own ``symbol()`` and ``decimals()`` as read when it was deployed or listed, and its address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    decimals: int = Field(ge=0, le=255)  # an ERC-20's uint8
    address: ChecksumAddress


class DeploymentRecord(BaseModel):
    """What is deployed on one chain, keyed by the recipe's names (``CreditAggregator``, ``USDC``, ...)."""

    chain_name: str
    chain_id: int
    profile: str
    source_commit: str = "unknown"
    #: the genesis block of the chain deployed to, as its block 1 names it (``chain_genesis_hash``): a restarted
    #: devnet is another chain, one restarted on its kept state is the same
    genesis_hash: str = ""
    deployed_at: str = ""
    contracts: dict[str, DeployedContract] = Field(default_factory=dict)
    steps: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: the block of the deployer's last step handing the contracts over (``contracts.deploy``: its renounce of the
    #: admin role): its role changes up to there are the deployment's wiring, later ones are not; None in a record
    #: written before it was kept
    handover_block: int | None = None

    def address(self, key: str) -> ChecksumAddress:
        try:
            return self.contracts[key].address
        except KeyError:
            known = ", ".join(self.contracts) or "none"
            raise ConfigurationError(f"{key} is not deployed on {self.chain_name} (deployed: {known})") from None

    def token_listings(self) -> dict[str, TokenListing]:
        """The tokens listed on this chain, by the platform's name for each (``parameters["tokens"]``); a devnet
        record written before a listing carried its address has it under the same key in ``contracts``.

        Raises ``ConfigurationError`` for a record that lists token addresses but not their decimals (a production
        record written before deployments recorded them), or a listing that cannot be read."""
        listed = self.parameters.get(TOKENS_PARAMETER)
        if listed is None:
            if self.parameters.get(TOKEN_ADDRESSES_PARAMETER):
                raise ConfigurationError(
                    f"the deployments record of {self.chain_name} has its tokens' addresses "
                    f"({TOKEN_ADDRESSES_PARAMETER}) but not their symbols and decimals ({TOKENS_PARAMETER}), which the "
                    "platform needs to convert amounts: re-run `creditmesh admin deploy --config <your production "
                    "file>` for this chain; on a finished deployment it sends nothing and records each token's "
                    "decimals and symbol read from chain"
                )
            return {}
        listings = {}
        for name, entry in dict(listed).items():
            try:
                listings[name] = TokenListing.model_validate(
                    {"address": self.address(name), **entry} if "address" not in entry else entry
                )
            except (ValidationError, TypeError) as err:
                raise ConfigurationError(
                    f"{self.chain_name}'s deployments record lists {name} unreadably: {err}"
                ) from err
        return listings

    @classmethod
    def load(cls, path: Path) -> DeploymentRecord:
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigurationError(f"cannot read deployments record {path}: {err}") from err

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def chain_genesis_hash(w3: Web3) -> str:
    """The hash of ``w3``'s chain's genesis block as its block 1 names it (block 1's parent hash), or block 0's own
    while there is no block 1.

    Not block 0's own hash once there is a block 1: anvil (1.7.1) started on a kept ``--state`` file writes another
    genesis block, stamped with that start's time, into it at every start, and answers for block 0 with any of the
    copies; the blocks after it keep their hashes, block 1's parent hash among them (the genesis it was built on).
    On any other chain the two are the same block. (A kept chain of block 0 alone builds its block 1 on the copy it
    answers for block 0, so a record stamped before its first transaction names the same genesis.)"""
    try:
        first = w3.eth.get_block(1)
    except BlockNotFound:
        genesis = w3.eth.get_block(0)["hash"]
        assert genesis is not None
        return genesis.to_0x_hex()
    return first["parentHash"].to_0x_hex()


def source_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Deployer:
    """Deploys and configures contracts on one chain from one signer, recording every step so that a re-run
    skips what is done (idempotent).

    Synchronous for its callers (deployment is an admin operation, not the request path), but every transaction
    goes through the lifecycle: a ``TransactionManager`` runs on a private event loop in a background thread,
    started at the first transaction. Each deploy is the intent ``deploy:<chain id>:<key>`` and each step
    ``step:<chain id>:<name>``, persisted before anything is signed in ``<record_path>.<genesis>.intents.db`` (a
    temporary file when there is no record path), so a run killed at any point resumes the same intents on the
    next run and never deploys a contract twice. An intent that failed (reverted, refused) is retried on the next
    run as ``<key>:retry-<n>``. The intents file is named after the chain's genesis block (``chain_genesis_hash``), so
    a restarted devnet never resumes another chain's transactions, and one restarted on its kept state resumes its
    own.

    ``close()`` (or ``with Deployer(...)``) stops the thread; a Deployer dropped without it is closed when it is
    garbage collected. ``config`` (the chain's registry entry: confirmations, fee cap) and ``store`` (e.g. the
    platform's PostgreSQL chain store, to share its nonce counter) are optional; ``on_signed`` is a test seam
    (see ``TransactionManager``)."""

    def __init__(
        self,
        w3: Web3,
        signer: Signer,
        record: DeploymentRecord,
        record_path: Path | None = None,
        *,
        config: ChainConfig | None = None,
        store: SqlChainStore | None = None,
        settings: LifecycleSettings | None = None,
        wait_timeout: float = 120.0,
        on_signed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        actual = w3.eth.chain_id
        if actual != record.chain_id:
            raise ChainIdMismatch(str(w3.provider), record.chain_id, actual)
        self.w3, self.signer, self.record, self.record_path = w3, signer, record, record_path
        genesis_hash = chain_genesis_hash(w3)
        if record.genesis_hash and record.genesis_hash != genesis_hash:
            raise ConfigurationError(
                f"deployments record {record_path or '(in memory)'} was made on another {record.chain_name} "
                f"(genesis {record.genesis_hash}, this node's is {genesis_hash}): a restarted devnet needs a fresh "
                "record"
            )
        record.genesis_hash = genesis_hash
        if not record.source_commit or record.source_commit == "unknown":
            record.source_commit = source_commit()
        devnet = w3.client_version.lower().startswith(DEVNET_CLIENTS)
        chain = config or _default_config(w3, record, devnet)
        if config is not None and config.chain_id != record.chain_id:
            raise ConfigurationError(f"config is for chain id {config.chain_id}, the record for {record.chain_id}")
        intents_path = (
            None
            if record_path is None
            else record_path.with_name(f"{record_path.name}.{genesis_hash[2:14]}.intents.db")
        )
        self._lifecycle = _Lifecycle(chain, signer, intents_path, store, settings, on_signed, wait_timeout, devnet)
        self._contracts: dict[tuple[str, str], Contract] = {}
        # Closes the thread when the Deployer is dropped unclosed (deploy_to_devnet); holds no reference to self.
        self._finalizer = weakref.finalize(self, self._lifecycle.close)

    def __enter__(self) -> Deployer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the lifecycle's thread (a later transaction starts it again)."""
        self._lifecycle.close()

    @property
    def intents_path(self) -> Path | None:
        """Where the deployment's intents are persisted (None: a temporary file removed on close)."""
        return self._lifecycle.intents_path

    def contract(self, key: str, artifact: str | None = None) -> Contract:
        deployed = self.record.contracts[key]
        name = artifact or deployed.artifact
        cached = self._contracts.get((name, deployed.address))
        if cached is None:  # web3 builds a contract class per call (~10 ms for our ABIs): once per address
            cached = self.w3.eth.contract(address=deployed.address, abi=load_artifact(name).abi)
            self._contracts[(name, deployed.address)] = cached
        return cached

    def deploy(self, key: str, artifact: str | Artifact, *args: Any) -> ChecksumAddress:
        """Deploy ``artifact`` (a name in the artifacts folder, or a loaded ``Artifact``) as ``key`` unless the
        record already has it with code on chain."""
        existing = self.record.contracts.get(key)
        if existing is not None and self.w3.eth.get_code(existing.address):
            return existing.address
        compiled = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        receipt = self._transact(f"deploy:{self.record.chain_id}:{key}", Call.deploy(compiled, *args), f"deploy {key}")
        address = receipt.contract_address
        if address is None:
            raise TransactionReverted(f"deploy {key}: no contract address in receipt", tx_hash=receipt.tx_hash)
        self.record.contracts[key] = DeployedContract(
            artifact=compiled.name,
            address=address,
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
            constructor_args=[_jsonable(arg) for arg in args],
            compiler=compiled.compiler,
        )
        self.save()
        return address

    def step(self, name: str, key: str, function: str, *args: Any) -> TxReceipt | None:
        """Call ``function(*args)`` on contract ``key`` once; a step already recorded is skipped."""
        if name in self.record.steps:
            return None
        call = Call.function(self.contract(key), function, *args)
        receipt = self._transact(f"step:{self.record.chain_id}:{name}", call, f"{name} ({key}.{function})")
        self.record.steps.append(name)
        self.save()
        return self._lifecycle.receipt(receipt.tx_hash)

    def _transact(self, intent_key: str, call: Call, what: str) -> Receipt:
        try:
            return self._lifecycle.transact(intent_key, call)
        except GasEstimationFailed as err:
            raise GasEstimationFailed(f"{what}: {err}", revert_data=err.revert_data, decoded=err.decoded) from err
        except TransactionReverted as err:
            raise TransactionReverted(f"{what}: {err}", tx_hash=err.tx_hash, revert_data=err.revert_data) from err

    def save(self) -> None:
        """Write the record (to ``record_path``, if any) after a change made outside ``deploy`` and ``step``."""
        self.record.deployed_at = datetime.now(UTC).isoformat(timespec="seconds")
        if self.record_path is not None:
            self.record.save(self.record_path)


class _Lifecycle:
    """A TransactionManager on a private event loop in a daemon thread, driven synchronously by ``transact``."""

    def __init__(
        self,
        config: ChainConfig,
        signer: Signer,
        intents_path: Path | None,
        store: SqlChainStore | None,
        settings: LifecycleSettings | None,
        on_signed: Callable[[str], Awaitable[None]] | None,
        wait_timeout: float,
        devnet: bool,
    ) -> None:
        self.config, self.signer, self.intents_path, self.devnet = config, signer, intents_path, devnet
        self._given_store, self._settings, self._on_signed = store, settings, on_signed
        self._wait_timeout = wait_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._client: ChainClient | None = None
        self._manager: TransactionManager | None = None
        self._next_nonce = 0  # the lowest nonce the manager's allocator may hand out, as far as we know
        self._lock = threading.Lock()

    def transact(self, intent_key: str, call: Call) -> Receipt:
        with self._lock:
            loop = self._start()
            return asyncio.run_coroutine_threadsafe(self._transact(intent_key, call), loop).result()

    def receipt(self, tx_hash: str) -> TxReceipt:
        """The node's receipt of ``tx_hash`` as web3 gives it (an AttributeDict), through the async client."""

        async def fetch() -> TxReceipt:
            assert self._client is not None
            found = await self._client.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            return cast(TxReceipt, AttributeDict.recursive(found))

        with self._lock:
            return asyncio.run_coroutine_threadsafe(fetch(), self._start()).result()

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        store = self._given_store or self._own_store()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"deployer-{self.config.name}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(store), loop).result()
        except BaseException:
            self._close()
            raise
        return loop

    def _own_store(self) -> SqlChainStore:
        path = self.intents_path
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="creditmesh-deploy-")
            path = Path(self._tmp.name) / "intents.db"
        engine = make_engine(f"sqlite:///{path}")
        if self.devnet:
            # A devnet lives in anvil's memory and dies with the machine, so its intents need to survive a killed
            # process (WAL does that at every commit) but not a power loss: skip the fsync per commit.
            event.listen(engine, "connect", _no_fsync)
        Base.metadata.create_all(engine, tables=list(CHAIN_TABLES))
        self._engine = engine
        return SqlChainStore(sessionmaker(engine, expire_on_commit=False))

    async def _open(self, store: SqlChainStore) -> None:
        self._client = ChainClient(self.config, timeout=30.0)
        manager = TransactionManager(
            self._client,
            self.signer,
            store,
            # A deployments record's intents are one tool run's at a time: a rerun after a crash takes over what the
            # crashed run left open within seconds instead of the platform's lease.
            settings=self._settings or LifecycleSettings.for_chain(self._client, claim_after=_RERUN_CLAIM_AFTER),
            on_signed=self._on_signed,
        )
        await manager.start()
        self._manager = manager
        self._next_nonce = await self._pending_count()

    async def _pending_count(self) -> int:
        assert self._client is not None
        return int(await self._client.rpc("eth_getTransactionCount", self.signer.address, "pending"), 16)

    async def _transact(self, base_key: str, call: Call) -> Receipt:
        manager = self._manager
        assert manager is not None
        # Someone else may have sent from this account since our last transaction (contracts/deploy.py's own
        # sends, another tool): never hand out a nonce the chain has already seen.
        pending = await self._pending_count()
        if pending > self._next_nonce:
            await manager.nonces.floor(manager.account, Nonce(pending))
            self._next_nonce = pending
        # ``base_key`` is resumed if an earlier run left it open; if it failed (reverted, refused), the next run
        # tries again as ``<base_key>:retry-<n>``.
        for attempt in itertools.count():
            key = base_key if attempt == 0 else f"{base_key}:retry-{attempt}"
            try:
                submission = await manager.submit(key, call)
            except IntentConflict:
                stored = await manager.store.get_intent(key)
                if stored is not None and stored.status in FAILED_STATUSES:
                    continue  # a failed intent of an earlier recipe
                raise
            if submission.status not in FAILED_STATUSES:
                break
        receipt = await manager.wait(key, self._wait_timeout)
        self._next_nonce = max(self._next_nonce, receipt.nonce + 1)
        return receipt

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if thread is threading.current_thread():  # garbage collected on our own loop: stop, do not wait for it
            loop.call_soon(loop.stop)
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(loop), loop)
        try:
            future.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            if not thread.is_alive():
                loop.close()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    async def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        manager, client = self._manager, self._client
        self._manager = self._client = None
        try:
            if manager is not None:
                await manager.close()
        finally:
            if client is not None:
                await client.close()
            await loop.shutdown_default_executor()


FAILED_STATUSES = (REVERTED, FAILED, DROPPED)
_RERUN_CLAIM_AFTER = 3.0  # seconds: a crashed run's open intents are taken over by the next run after this
DEVNET_CLIENTS = ("anvil", "hardhat", "ganache")  # web3_clientVersion prefixes of local development nodes


def _no_fsync(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _default_config(w3: Web3, record: DeploymentRecord, devnet: bool) -> ChainConfig:
    """The chain as the Deployer's ``w3`` reaches it: its HTTP URL, one confirmation."""
    url = getattr(w3.provider, "endpoint_uri", None)
    if not url:
        raise ConfigurationError(f"the deployer needs an HTTP provider or a ChainConfig, got {w3.provider!r}")
    return ChainConfig(
        name=record.chain_name,
        chain_id=record.chain_id,
        rpc_urls=[str(url)],
        confirmations=1,
        block_time_seconds=0.2 if devnet else 1.0,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
