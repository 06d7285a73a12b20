"""What several command groups share: the API's default port and the local devnets' RPC URLs (cheap to import:
``creditmesh serve`` starts with it)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

__all__ = [
    "API_PORT",
    "bytes32_hex",
    "devnet_index",
    "local_rpc",
    "positive_number",
    "positive_seconds",
    "tcp_port",
]

API_PORT = 8000  # the API's port in `creditmesh run` and `creditmesh serve`


def local_rpc(chain_name: str) -> str:
    """The RPC URL of a local devnet on its fixed ``make run`` port; ``ConfigurationError`` for a chain that is not
    one of them (a bare ``next()`` ended the command in a ``StopIteration`` traceback)."""
    from chain.config import LOCAL_CHAINS
    from chain.errors import ConfigurationError

    port = next((chain.port for chain in LOCAL_CHAINS if chain.name == chain_name), None)
    if port is None:
        local = ", ".join(chain.name for chain in LOCAL_CHAINS)
        raise ConfigurationError(
            f"{chain_name} is not a local devnet ({local}): give --chains-file, the chains file naming its RPC URL"
        )
    return f"http://127.0.0.1:{port}"


def positive_number(unit: str, at_most: float = math.inf, hint: str = "") -> Callable[[str], float]:
    """An argparse ``type``: a finite number of ``unit`` above 0 and at most ``at_most`` (nan and inf refused);
    ``hint`` ends the refusal."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not (math.isfinite(value) and 0 < value <= at_most):
            bound = "" if math.isinf(at_most) else f" and at most {at_most:g} {unit}"
            raise argparse.ArgumentTypeError(f"{text} {unit} must be more than 0{bound}{hint}")
        return value

    return parse


#: a ``--lease-seconds`` or ``--interval``: the workers' settings are copied with it, which skips their own bounds (a
#: lease of 0 or -5 expired as it was taken and its renewal spun)
positive_seconds = positive_number("seconds")


def devnet_index(text: str) -> int:
    """A ``--account``: the index of one of anvil's devnet accounts (0 … 19); another was a traceback."""
    from chain.devnet import DEVNET_ACCOUNTS

    if not text.isdigit() or int(text) >= DEVNET_ACCOUNTS:
        raise argparse.ArgumentTypeError(f"{text!r} is no devnet account: 0 to {DEVNET_ACCOUNTS - 1}")
    return int(text)


def tcp_port(text: str) -> int:
    """A ``--port``: 1 to 65535 (70000 ended ``creditmesh run`` in an OverflowError traceback from the socket)."""
    if not text.isdigit() or not 0 < int(text) < 2**16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: 1 to 65535")
    return int(text)


def bytes32_hex(text: str) -> str:
    """An operation id or a salt: ``0x`` and 64 hex digits (lower-cased). Another — an id cut short (``0x3f…``), a
    word (``latest``), a digit that is not hex, or no ``0x`` (two digits were dropped as if it were there) — is
    refused by the parser, naming it; ``bytes.fromhex`` ended such a command with a traceback."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not 32 bytes of hex: 0x and 64 hex digits")
    return text.lower()
