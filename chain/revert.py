"""Decode revert data: the contracts' custom errors (``error Name(args)``) with their ABIs, and Solidity's own
``Error(string)`` (a ``require`` message, as OpenZeppelin 4's and USDC's tokens revert) and ``Panic(uint256)`` (an
arithmetic overflow, a division by zero …), whichever contract reverted with them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak
from web3._utils.error_formatters_utils import (
    PANIC_ERROR_CODES,
    PANIC_ERROR_FUNC_SELECTOR,
    SOLIDITY_ERROR_FUNC_SELECTOR,
)

from chain.artifacts import load_artifact

#: Solidity's built-in errors, no artifact's: ``require(cond, "reason")`` / ``revert("reason")``, and a panic
_ERROR, _PANIC = "Error", "Panic"
_BUILT_IN: dict[bytes, tuple[str, list[str]]] = {
    bytes.fromhex(SOLIDITY_ERROR_FUNC_SELECTOR[2:]): (_ERROR, ["string"]),
    bytes.fromhex(PANIC_ERROR_FUNC_SELECTOR[2:]): (_PANIC, ["uint256"]),
}


@dataclass(frozen=True, slots=True)
class DecodedError:
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        if self.name == _ERROR and len(self.args) == 1:
            return f"Error({json.dumps(self.args[0], ensure_ascii=False)})"
        if self.name == _PANIC and len(self.args) == 1:
            return f"Panic({_panic_meaning(self.args[0])})"
        return f"{self.name}({', '.join(map(_shown, self.args))})"


def _panic_meaning(code: int) -> str:
    """A ``Panic(uint256)`` code as Solidity documents it: ``0x11: arithmetic operation results in underflow or
    overflow``; a code Solidity does not define is said to be unknown."""
    said = PANIC_ERROR_CODES.get(f"{code:02x}")
    if said is None:
        return f"0x{code:02x}: an unknown panic code"
    meaning = said.split(": ", 1)[1].rstrip(".")
    return f"0x{code:02x}: {meaning[:1].lower()}{meaning[1:]}"


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
    """The error in ``data`` (``0x`` + selector + ABI-encoded arguments): ``Error(string)``, ``Panic(uint256)`` or a
    custom error one of ``artifacts`` declares. None when there is nothing to decode — no data, ``0x`` (a bare
    ``revert()``), a selector no artifact declares — and when the selector is known but the arguments do not decode
    as its types (short, badly padded, a string that is not UTF-8): never eth_abi's DecodingError."""
    if isinstance(data, str):
        try:
            raw = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    elif isinstance(data, bytes):
        raw = data
    else:
        return None
    declared = _declared(raw[:4], artifacts)
    if declared is None:
        return None
    name, types = declared
    try:
        return DecodedError(name, tuple(decode(types, raw[4:])))
    except (DecodingError, UnicodeDecodeError):
        return None


def _declared(selector: bytes, artifacts: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The error ``selector`` names and its argument types: Solidity's own, else the first artifact's declaring it."""
    if selector in _BUILT_IN:
        return _BUILT_IN[selector]
    for artifact in artifacts:
        found = _errors_by_selector(artifact).get(selector)
        if found is not None:
            return found
    return None
