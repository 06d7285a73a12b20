"""Keccak-256 on safe-pysha3's C code for every Ethereum library in the process.

eth-utils, eth-abi, eth-account and web3 all hash through eth-hash's one ``keccak`` object, which picks its backend
on first use: pycryptodome when installed (eth-account installs it), ~5 µs a hash for object set-up alone, against
~0.7 µs with pysha3. A credit request hashes a few hundred times (EIP-712 structs, checksummed addresses, decision
and audit hashes), so the backend is chosen once at start-up instead (``ETH_HASH_BACKEND`` does the same from the
environment, but only before the first hash, which imports already do)."""

from __future__ import annotations

import eth_hash.auto
from eth_hash.utils import load_backend

#: the backend ``use_fast_keccak`` selects (``eth-hash[pysha3]`` in pyproject.toml)
FAST_BACKEND = "pysha3"


def use_fast_keccak() -> None:
    """Point eth-hash's shared ``keccak`` at the pysha3 backend (same digests; idempotent)."""
    backend = load_backend(FAST_BACKEND)
    eth_hash.auto.keccak.hasher = backend.keccak256
    eth_hash.auto.keccak.preimage = backend.preimage
