"""Units as types, as web3.py does."""

from __future__ import annotations

from typing import NewType

Wei = NewType("Wei", int)
ChainId = NewType("ChainId", int)
