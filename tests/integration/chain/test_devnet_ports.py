"""A devnet is the anvil it started, never another process that answers on its port with the same chain id: an anvil
left over from an earlier ``make run`` on a fixed port, or another test worker's on a port both chose free. A held
port is refused with the reason (``creditmesh run`` says it and exits 1); a free port found taken is exchanged. A port
chosen free is kept from every other choice of a free port until its server binds it (the test servers of two pytest
workers, or two ``creditmesh serve --processes`` on one machine, never pick the same one); a server's own port is held
back again for its restart unless another program has taken it, then another is chosen."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import api.local_platform
import chain.devnet
from api.cli import main as cli
from chain.config import LOCAL_CHAINS
from chain.devnet import Devnet, free_port, start_devnet
from chain.errors import DevnetPortTaken

pytestmark = pytest.mark.integration

CHAIN = LOCAL_CHAINS[0]


@pytest.fixture
def holder() -> Iterator[Devnet]:
    """An anvil of the same chain id already listening on a port."""
    devnet = start_devnet(CHAIN, port=0)
    try:
        yield devnet
    finally:
        devnet.stop()


def _kernel_choice(reuse_address: bool) -> int:
    """The port the kernel gives a bind to port 0, as any other process choosing a free port gets one."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_port_chosen_free_is_not_given_to_anyone_else_until_its_server_binds_it() -> None:
    chosen = {free_port() for _ in range(300)}
    # a port bound and released at once came back to one choice in ~50 here (the ephemeral range's 14k odd ports):
    # ~60 of these 3,000 choices would be one of the 300
    others = [_kernel_choice(reuse_address=index % 2 == 1) for index in range(3000)]
    assert chosen.isdisjoint(others)
    # while the server it was chosen for binds it as servers do (SO_REUSEADDR), and anvil does
    port = chosen.pop()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
    devnet = start_devnet(CHAIN, port=chosen.pop())
    devnet.stop()


def test_a_server_s_own_port_is_held_back_again_unless_another_program_took_it() -> None:
    port = free_port()
    with socket.socket() as server:  # a server on it, closed after an exchange: its side of it left in TIME_WAIT
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)):
            server.accept()[0].close()
    assert free_port(again=port) == port
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))
        other.listen()
        moved = free_port(again=port)
    assert moved != port
    assert moved not in [_kernel_choice(reuse_address=False) for _ in range(200)]


def _block_number(devnet: Devnet) -> int:
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    return int(httpx.post(devnet.rpc_url, json=payload, timeout=5).json()["result"], 16)


def test_a_given_port_held_by_another_anvil_is_refused_not_borrowed(holder: Devnet) -> None:
    with pytest.raises(DevnetPortTaken, match=f"port {holder.port}.*Address already in use"):
        start_devnet(CHAIN, port=holder.port)
    assert holder.process.poll() is None
    assert _block_number(holder) == 0


def test_a_free_port_taken_before_anvil_binds_it_is_exchanged_for_another(
    holder: Devnet, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = iter([holder.port])
    monkeypatch.setattr(chain.devnet, "free_port", lambda: next(chosen, None) or free_port())
    devnet = start_devnet(CHAIN, port=0)
    try:
        assert devnet.port != holder.port
        assert devnet.process.poll() is None
        # its own chain: a block mined on it is not mined on the holder's
        httpx.post(devnet.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}, timeout=5)
        assert (_block_number(devnet), _block_number(holder)) == (1, 0)
    finally:
        devnet.stop()


def test_creditmesh_run_on_a_held_port_says_so_and_starts_nothing(
    holder: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(api.local_platform, "LOCAL_CHAINS", (CHAIN.model_copy(update={"port": holder.port}),))
    with pytest.raises(SystemExit) as ended:
        cli(["run"])
    assert ended.value.code == 1
    said = capsys.readouterr().err
    assert f"port {holder.port}: Error: Address already in use" in said
    assert "another `creditmesh run` still running?" in said
    assert "Traceback" not in said
    assert _block_number(holder) == 0  # nothing was deployed to the anvil that holds the port
