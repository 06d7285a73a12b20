"""A borrower's accept over HTTP, as a wallet makes it: the quote read, the acceptance signed, and a permit of the
collateral signed when its token has one (the e2e tests of lender offer events and of unfunded loans)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from api.wallet import sign_acceptance, sign_permit
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform


def accept_with_permit(
    platform: RunningPlatform, chain: DeployedChain, wallet: LocalAccount, key: str, quote_id: str
) -> httpx.Response:
    """The borrower signs the acceptance and a permit of the collateral, and posts them (the answer as it is)."""
    with platform.client(key) as client:
        quote = client.get(f"/v1/quotes/{quote_id}").raise_for_status().json()
        offer = quote["offer"]
        permit = sign_permit(
            wallet,
            chain.devnet.rpc_url,
            offer["collateralAsset"],
            quote["contract"],
            int(offer["collateralAmount"]),
            int(offer["expiry"]),
        )
        body: dict[str, Any] = {"signature": sign_acceptance(wallet, quote["acceptance_typed_data"])}
        return client.post(f"/v1/quotes/{quote_id}/accept", json=body | ({"permit": permit} if permit else {}))
