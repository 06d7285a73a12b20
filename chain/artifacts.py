"""Compiled contract artifacts (ABI + bytecode per contract) exported by the build from ape's manifest.

Run-time code loads these JSON files and never imports ape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chain.errors import ArtifactNotFound

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACTS_DIR = PROJECT_ROOT / "artifacts"


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: dict[str, Any]
    # (byte offset, length) of each immutable in ``deployed_bytecode``: set by the constructor, so masked when a
    # deployed contract's code is compared with the artifact
    immutable_references: tuple[tuple[int, int], ...] = ()


@cache
def load_artifact(name: str, directory: Path = DEFAULT_ARTIFACTS_DIR) -> Artifact:
    """The artifact of contract ``name``; raises ArtifactNotFound with what to do when it is missing."""
    path = directory / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ArtifactNotFound(f"no compiled artifact {path}: run `make compile`") from err
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        compiler=raw["compiler"],
        immutable_references=tuple((int(start), int(length)) for start, length in raw.get("immutableReferences", [])),
    )
