"""Local devnets: one anvil process per configured chain, on fixed ports (``make run``) or free loopback ports
(tests, so parallel runs never clash). Started, waited for, and stopped cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ephemeral_port_reserve
import httpx
import psutil
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from chain.artifacts import PROJECT_ROOT
from chain.config import ChainConfig, LocalChain
from chain.errors import DevnetError, DevnetPortTaken

# anvil's default development mnemonic: its keys are public, so devnets never use a public network's chain id.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
# DESIGN.md's account map runs to index 14 (0 deployer … 10 keeper, 11 audit anchor, 12-14 Safe owners).
DEVNET_ACCOUNTS = 20
LOOPBACK = "127.0.0.1"


def anvil_binary() -> str:
    """The anvil from npm (node_modules/.bin), or ``CREDITMESH_ANVIL``, or one on PATH."""
    configured = os.environ.get("CREDITMESH_ANVIL")
    if configured:
        return configured
    local = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found is None:
        raise DevnetError("anvil not found: run `make setup` (it installs @foundry-rs/anvil-linux-amd64 from npm)")
    return found


def free_port(again: int = 0) -> int:
    """A loopback port no other process is using, held back from the kernel's own choices for about a minute: the
    port is left in TIME_WAIT, so another ``bind`` to port 0 (another test worker choosing a free port) is never
    given it, while the server it is meant for binds it with ``SO_REUSEADDR`` (anvil, uvicorn, asyncio's servers,
    Redis and PostgreSQL all set it). A port bound and released at once would be free for anyone to take between
    the choice and the server's bind. ``again``: that port, held back anew, when no other process holds it (a
    server's own port, to start it there again); otherwise another."""
    return int(ephemeral_port_reserve.reserve(LOOPBACK, again))


@dataclass
class Devnet:
    """A running anvil."""

    name: str
    chain_id: int
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self, confirmations: int = 1) -> ChainConfig:
        return ChainConfig(
            name=self.name,
            chain_id=self.chain_id,
            rpc_urls=[self.rpc_url],
            confirmations=confirmations,
            block_time_seconds=1.0,
        )

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def _listens(devnet: Devnet) -> bool:
    """Whether the devnet's own anvil listens on its port, not another process that answered there: a port chosen
    free may be taken by someone else before anvil binds it (another test worker's anvil of the same chain id), and a
    fixed one may be held by an anvil left over from an earlier run."""
    try:
        connections = psutil.Process(devnet.process.pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # where another process's sockets cannot be read, the chain id is the only check
        return True
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == devnet.port for c in connections)


def _wait_ready(devnet: Devnet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if devnet.process.poll() is not None:
            said = devnet.process.stderr.read().decode(errors="replace").strip() if devnet.process.stderr else ""
            error = DevnetPortTaken if "Address already in use" in said else DevnetError
            raise error(
                f"anvil for {devnet.name} exited with {devnet.process.returncode} on port {devnet.port}: {said}"
            )
        try:
            answer = httpx.post(devnet.rpc_url, json=payload, timeout=1.0).json()
            if int(answer["result"], 16) == devnet.chain_id and _listens(devnet):
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    raise DevnetError(f"anvil for {devnet.name} not ready on port {devnet.port} after {timeout} s")


def start_devnet(
    chain: LocalChain,
    *,
    port: int | None = None,
    block_time: float | None = None,
    state_dir: Path | None = None,
    fork_url: str | None = None,
    timeout: float = 20.0,
) -> Devnet:
    """Start anvil for ``chain`` on ``port`` (the chain's fixed port when None is given and ``port=0`` means a free
    one) and wait until it answers with the right chain id. With ``fork_url`` it is a fork of that chain at its
    latest block (governance dry runs), with the chain's own id. A free port taken by another process before anvil
    binds it is given up for another (three tries); a given port held by another process is a ``DevnetPortTaken``."""
    if port != 0:
        return _start(chain, chain.port if port is None else port, block_time, state_dir, fork_url, timeout)
    retrying = Retrying(stop=stop_after_attempt(3), retry=retry_if_exception_type(DevnetPortTaken), reraise=True)
    return retrying(lambda: _start(chain, free_port(), block_time, state_dir, fork_url, timeout))


def _start(
    chain: LocalChain,
    chosen: int,
    block_time: float | None,
    state_dir: Path | None,
    fork_url: str | None,
    timeout: float,
) -> Devnet:
    command = [
        anvil_binary(),
        "--host",
        LOOPBACK,
        "--port",
        str(chosen),
        "--chain-id",
        str(chain.chain_id),
        "--mnemonic",
        DEVNET_MNEMONIC,
        "--accounts",
        str(DEVNET_ACCOUNTS),
        "--silent",
    ]
    if block_time:
        command += ["--block-time", str(block_time)]
    if fork_url is not None:
        command += ["--fork-url", fork_url]
    if state_dir is not None:  # loaded at start when it exists; dumped every few seconds and at exit
        state_dir.mkdir(parents=True, exist_ok=True)
        command += ["--state", str(state_dir / f"{chain.name}.json"), "--state-interval", "5"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    devnet = Devnet(name=chain.name, chain_id=chain.chain_id, port=chosen, process=process)
    try:
        _wait_ready(devnet, timeout)
    except DevnetError:
        devnet.stop()
        raise
    return devnet


@contextmanager
def devnets(
    chains: Iterable[LocalChain], *, free_ports: bool = True, state_dir: Path | None = None
) -> Iterator[list[Devnet]]:
    """Start one anvil per chain (each keeping its chain in ``state_dir`` across runs, when given); stop them all on
    exit, whatever happens."""
    started: list[Devnet] = []
    try:
        for chain in chains:
            started.append(start_devnet(chain, port=0 if free_ports else None, state_dir=state_dir))
        yield started
    finally:
        for devnet in started:
            devnet.stop()
