"""Units as types, as web3.py does."""

from __future__ import annotations

from typing import NewType

Wei = NewType("Wei", int)
ChainId = NewType("ChainId", int)
Nonce = NewType("Nonce", int)
BlockNumber = NewType("BlockNumber", int)
# A 0x-prefixed, lower-case 32-byte hex string: a transaction or block hash as it is persisted.
HexHash = NewType("HexHash", str)
