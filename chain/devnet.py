"""Local devnets: one anvil process per configured chain, on fixed ports (``make run``) or free loopback ports
(tests, so parallel runs never clash). Started, waited for, and stopped cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chain.artifacts import PROJECT_ROOT
from chain.config import ChainConfig, LocalChain
from chain.errors import DevnetError

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


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


def _wait_ready(devnet: Devnet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if devnet.process.poll() is not None:
            raise DevnetError(f"anvil for {devnet.name} exited with {devnet.process.returncode} on port {devnet.port}")
        try:
            answer = httpx.post(devnet.rpc_url, json=payload, timeout=1.0).json()
            if int(answer["result"], 16) == devnet.chain_id:
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
    latest block (governance dry runs), with the chain's own id."""
    chosen = chain.port if port is None else (port or free_port())
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
