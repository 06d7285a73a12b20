"""A signed offer's fields as a quote keeps them (``QuoteView.offer``): every field an acceptance's EIP-712 typed
data names, for unit tests of the accept that need no chain."""

from __future__ import annotations

from typing import Any


def offer_fields(borrower: str) -> dict[str, Any]:
    """An offer of 100 USDC (6 decimals) for 30 days at 9% to ``borrower``, on chain 31337, expiring in 2033."""
    return {
        "providerId": "0x" + "11" * 32,
        "pool": "0x" + "22" * 20,
        "borrower": borrower,
        "asset": "0x" + "33" * 20,
        "principal": "100000000",
        "rateBps": 900,
        "term": 2_592_000,
        "originationFee": "0",
        "collateralAsset": "0x" + "44" * 20,
        "collateralAmount": str(10**17),
        "chainId": 31337,
        "termsHash": "0x" + "55" * 32,
        "expiry": 2_000_000_000,
        "nonce": "7",
    }
