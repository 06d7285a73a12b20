"""Bytecode verification: is the runtime code at each address in a deployments record the compiled artifact's?

The constructor writes immutables into the runtime code, so their bytes (``Artifact.immutable_references``, solc's
``immutableReferences`` exported with the artifacts) are masked on both sides before comparing; everything else,
the metadata hash included, must be equal byte for byte. A mismatch is reported, never accepted silently."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eth_typing import ChecksumAddress
from web3 import Web3

from chain.artifacts import Artifact, load_artifact
from chain.deployment import DeploymentRecord


class CodeStatus(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    NO_CODE = "no code"


@dataclass(frozen=True, slots=True)
class CodeCheck:
    key: str
    address: ChecksumAddress
    artifact: str
    status: CodeStatus
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.key:22} {self.address}  {self.artifact:20} {self.status.value}{detail}"


def masked(code: bytes, references: tuple[tuple[int, int], ...]) -> bytes:
    """``code`` with each (offset, length) immutable zeroed."""
    out = bytearray(code)
    for start, length in references:
        out[start : start + length] = bytes(min(length, max(0, len(out) - start)))
    return bytes(out)


def compare_code(onchain: bytes, artifact: Artifact) -> str | None:
    """None when ``onchain`` is ``artifact``'s runtime code (immutables masked), else what differs."""
    expected = bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x"))
    if len(onchain) != len(expected):
        return f"{len(onchain)} bytes on chain, the artifact's runtime code has {len(expected)}"
    references = artifact.immutable_references
    left, right = masked(onchain, references), masked(expected, references)
    if left == right:
        return None
    first = next(index for index, (a, b) in enumerate(zip(left, right, strict=True)) if a != b)
    return f"code differs from byte {first} (immutables masked)"


def verify_code(w3: Web3, key: str, address: ChecksumAddress, artifact: Artifact) -> CodeCheck:
    onchain = bytes(w3.eth.get_code(address))
    if not onchain:
        return CodeCheck(key, address, artifact.name, CodeStatus.NO_CODE, "no contract at the recorded address")
    difference = compare_code(onchain, artifact)
    status = CodeStatus.VERIFIED if difference is None else CodeStatus.MISMATCH
    return CodeCheck(key, address, artifact.name, status, difference or "")


def verify_record(w3: Web3, record: DeploymentRecord) -> list[CodeCheck]:
    """One check per recorded contract, in the record's order."""
    return [
        verify_code(w3, key, deployed.address, load_artifact(deployed.artifact))
        for key, deployed in record.contracts.items()
    ]
