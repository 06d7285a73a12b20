"""JSON read the way JavaScript reads it: ``JSON.parse`` makes every number a double, exact to 2^53 only (what a
browser wallet, ethers or viem sees of an API answer)."""

from __future__ import annotations

import json
from typing import Any

#: the integers a double holds exactly, every one (``Number.MAX_SAFE_INTEGER`` is 2^53 - 1)
MAX_SAFE_INTEGER = 2**53 - 1


def javascript_loads(text: str | bytes) -> Any:
    """``JSON.parse(text)``: each integer the double nearest to it (read back as the integer it holds)."""
    return json.loads(text, parse_int=lambda digits: int(float(digits)))


def unsafe_integers(text: str | bytes) -> list[int]:
    """The integers of a JSON text that JavaScript reads rounded or at the edge of exactness (above 2^53 - 1)."""
    found: list[int] = []

    def integer(digits: str) -> int:
        if abs(value := int(digits)) > MAX_SAFE_INTEGER:
            found.append(value)
        return value

    json.loads(text, parse_int=integer)
    return found
