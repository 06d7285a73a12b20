"""A creditmesh acceptance document as the API hands one (``acceptance_typed_data``), made up for the wallet's tests:
devnet borrower 6 accepting 1,500 USDC against 1 WETH from the CreditAggregator at AGGREGATOR."""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address

from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account
from contracts import typed_data
from contracts.typed_data import Domain

BORROWER = devnet_account(DEVNET_BORROWER_INDEXES[0])
AGGREGATOR = to_checksum_address("0x" + "44" * 20)
USDC, WETH = to_checksum_address("0x" + "11" * 20), to_checksum_address("0x" + "22" * 20)


def offer(chain_id: int = 31337) -> dict[str, Any]:
    return {
        "providerId": "0x" + "00" * 32,
        "pool": "0x" + "00" * 20,
        "borrower": BORROWER.address,
        "asset": USDC,
        "principal": "1500000000",
        "rateBps": 500,
        "term": 2_592_000,
        "originationFee": "0",
        "collateralAsset": WETH,
        "collateralAmount": "1000000000000000000",
        "chainId": str(chain_id),
        "termsHash": "0x" + "33" * 32,
        "expiry": 1_900_000_000,
        "nonce": "1",
    }


def acceptance(chain_id: int = 31337, contract: str = AGGREGATOR, offered_on: int = 31337) -> dict[str, Any]:
    return typed_data.acceptance_json_typed_data(Domain(chain_id, to_checksum_address(contract)), offer(offered_on))
