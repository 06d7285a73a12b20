"""Borrower-side wallet helpers for devnets: approve collateral and sign an acceptance with a devnet key, so that
the README's example is copy-paste. A real borrower signs the same EIP-712 document in their own wallet."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from chain.artifacts import load_artifact
from contracts import typed_data


def sign_acceptance(account: LocalAccount, document: dict[str, Any]) -> str:
    """The 0x signature of a quote's ``acceptance_typed_data``."""
    return "0x" + typed_data.sign(document, account.key).hex()


def approve_collateral(account: LocalAccount, rpc_url: str, token: str, spender: str, amount: int) -> str:
    """ERC-20 approve from the devnet account; returns the transaction hash."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    erc20 = w3.eth.contract(address=to_checksum_address(token), abi=load_artifact("MockERC20").abi)
    tx = erc20.functions.approve(to_checksum_address(spender), amount).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    return tx_hash.to_0x_hex()


def accept_quote(account: LocalAccount, api_url: str, api_key: str, quote_id: str, rpc_url: str) -> dict[str, Any]:
    """Fetch the quote, approve its collateral to the CreditAggregator, sign the acceptance and post it."""
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:
        quote = client.get(f"/v1/quotes/{quote_id}").raise_for_status().json()
        offer = quote["offer"]
        approve_collateral(
            account, rpc_url, offer["collateralAsset"], quote["contract"], int(offer["collateralAmount"])
        )
        signature = sign_acceptance(account, quote["acceptance_typed_data"])
        response = client.post(f"/v1/quotes/{quote_id}/accept", json={"signature": signature})
        body: dict[str, Any] = response.json()
        if response.status_code >= 400:
            raise SystemExit(f"accept failed ({response.status_code}): {body.get('detail')}")
        return body
