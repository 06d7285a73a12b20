"""Export ABI + bytecode per contract from ape's build manifest to a stable JSON folder that ``chain/`` loads, with
the runtime code's immutable positions (``immutableReferences``: [[start, length], ...], recorded by the solc shim
beside the manifest in ``immutable-references.json``) so that a deployed contract's code can be verified.

Usage: python scripts/toolchain/export_artifacts.py .build/__local__.json artifacts
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Deployed from OpenZeppelin's own build of the pinned npm version: compiling TimelockController here would pull
# OZ's utils/Errors.sol into ape's manifest, whose name shadows our Errors interface (one contract type per name).
# The Safe 1.4.1 contracts come from the Safe team's own Hardhat build (npm @safe-global/safe-contracts). None of
# these prebuilt contracts has an immutable, so their runtime code is compared whole.
SAFE_BUILD = Path("node_modules/@safe-global/safe-contracts/build/artifacts/contracts")
PREBUILT = {
    "TimelockController": Path("node_modules/@openzeppelin/contracts/build/contracts/TimelockController.json"),
    "SafeL2": SAFE_BUILD / "SafeL2.sol/SafeL2.json",
    "SafeProxyFactory": SAFE_BUILD / "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "SafeProxy": SAFE_BUILD / "proxies/SafeProxy.sol/SafeProxy.json",
}


def _bytecode(entry: dict[str, Any] | None) -> str:
    return str((entry or {}).get("bytecode", "0x"))


def _immutables(known: dict[str, list[dict[str, int]]], source: str | None, name: str) -> list[list[int]]:
    return [[ref["start"], ref["length"]] for ref in known.get(f"{source}:{name}", [])]


def export(manifest_path: Path, out_dir: Path) -> list[str]:
    manifest = json.loads(manifest_path.read_text())
    immutables_path = manifest_path.parent / "immutable-references.json"
    immutables: dict[str, list[dict[str, int]]] = (
        json.loads(immutables_path.read_text()) if immutables_path.exists() else {}
    )
    compilers = manifest.get("compilers", [])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, contract in sorted(manifest["contractTypes"].items()):
        compiler: dict[str, Any] = next((c for c in compilers if name in c.get("contractTypes", [])), {})
        settings = compiler.get("settings", {})
        artifact = {
            "contractName": name,
            "sourceId": contract.get("sourceId"),
            "abi": contract["abi"],
            "bytecode": _bytecode(contract.get("deploymentBytecode")),
            "deployedBytecode": _bytecode(contract.get("runtimeBytecode")),
            "immutableReferences": _immutables(immutables, contract.get("sourceId"), name),
            "compiler": {
                "name": compiler.get("name", "solidity"),
                "version": compiler.get("version"),
                "evmVersion": settings.get("evmVersion"),
                "optimizer": settings.get("optimizer"),
                "viaIR": settings.get("viaIR", False),
            },
        }
        target = out_dir / f"{name}.json"
        text = json.dumps(artifact, indent=1, sort_keys=True) + "\n"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        written.append(name)
    for name, path in PREBUILT.items():
        raw = json.loads(path.read_text())
        prebuilt = {
            "contractName": name,
            "sourceId": raw.get("sourceName"),
            "abi": raw["abi"],
            "bytecode": raw["bytecode"],
            "deployedBytecode": raw["deployedBytecode"],
            "immutableReferences": [],
            "compiler": {"name": "solidity", "source": f"prebuilt {path}"},
        }
        (out_dir / f"{name}.json").write_text(json.dumps(prebuilt, indent=1, sort_keys=True) + "\n")
        written.append(name)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in written:
            stale.unlink()
    return written


if __name__ == "__main__":
    names = export(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"[setup] exported {len(names)} contract artifacts to {sys.argv[2]}", file=sys.stderr)
