"""Decode custom-error revert data (``error Name(args)``) with the contracts' ABIs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from chain.artifacts import load_artifact


@dataclass(frozen=True, slots=True)
class DecodedError:
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(_shown, self.args))})"


def _shown(arg: Any) -> str:
    """An argument as a reader knows it: bytes (a bytes32 id, a bitmap) as 0x hex rather than Python's b'...'."""
    if isinstance(arg, bytes):
        return "0x" + arg.hex()
    if isinstance(arg, tuple):
        return f"({', '.join(map(_shown, arg))})"
    if isinstance(arg, list):
        return f"[{', '.join(map(_shown, arg))}]"
    return str(arg)


@cache
def _errors_by_selector(artifact: str) -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    for item in load_artifact(artifact).abi:
        if item.get("type") == "error":
            types = [_abi_type(arg) for arg in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], types)
    return table


def _abi_type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(component) for component in arg["components"]) + ")" + str(arg["type"])[5:]
    return str(arg["type"])


def decode_revert(data: object, artifacts: tuple[str, ...] = ("Errors",)) -> DecodedError | None:
    """The custom error in ``data`` (``0x`` + selector + args), or None when no artifact declares it — or when one
    does but the arguments do not decode as its types (short, badly padded): never eth_abi's DecodingError, which is
    no ValueError and escaped every caller."""
    if isinstance(data, str):
        try:
            raw = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    elif isinstance(data, bytes):
        raw = data
    else:
        return None
    for artifact in artifacts:
        found = _errors_by_selector(artifact).get(raw[:4])
        if found is not None:
            name, types = found
            try:
                return DecodedError(name, tuple(decode(types, raw[4:])))
            except DecodingError:
                return None
    return None
