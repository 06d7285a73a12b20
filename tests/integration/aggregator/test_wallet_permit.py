"""The devnet wallet's permit of a debt asset or a collateral on a real anvil, for each kind of permit token: it is
signed under the domain ``GET /v1/platform`` lists for the token (an EIP-5267 token's, an older one's read by its
``DOMAIN_SEPARATOR()``) and the token takes it; for a token whose domain is not one the platform checks a permit under
(a salted one) the wallet signs nothing and approves the amount instead, as ``wallet accept`` does for a collateral
without a permit."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3

from aggregator.token_domains import read_token_domain
from api.wallet import permit_or_approve, sign_permit
from chain.signers import devnet_account
from contracts.typed_data import TokenDomain
from tests.integration.aggregator.test_permit_domain import SPENDER, _token
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

AMOUNT = 10**6


async def _listed(chain: DeployedChain, token: ChecksumAddress) -> TokenDomain | None:
    """The token's permit domain as ``GET /v1/platform`` lists it."""
    w3 = AsyncWeb3(AsyncHTTPProvider(chain.devnet.rpc_url))
    try:
        return await read_token_domain(w3, chain.chain_id, token)
    finally:
        await w3.provider.disconnect()


@pytest.mark.parametrize("contract", ["MockERC20", "MockLegacyPermitERC20"])
def test_the_wallets_permit_is_signed_under_the_listed_domain_and_taken_by_the_token(
    ethereum_local: DeployedChain, contract: str
) -> None:
    """The wallet read the domain from ``eip712Domain()`` only: for a token without it (mainnet USDC's kind) it signed
    no permit and approved nothing, and every repayment was refused "permit required". The borrower here has no ETH:
    a permit is the only way."""
    token, owner = _token(ethereum_local, contract), Account.create()
    rpc = ethereum_local.devnet.rpc_url
    assert asyncio.run(_listed(ethereum_local, token.address)) is not None
    deadline = int(ethereum_local.w3.eth.get_block("latest")["timestamp"]) + 3_600

    permit = permit_or_approve(owner, rpc, token.address, SPENDER, AMOUNT, deadline)

    assert permit is not None
    r, s = bytes.fromhex(permit["r"][2:]), bytes.fromhex(permit["s"][2:])
    sent = token.functions.permit(owner.address, SPENDER, AMOUNT, deadline, permit["v"], r, s)
    receipt = ethereum_local.w3.eth.wait_for_transaction_receipt(sent.transact({"from": devnet_account(0).address}))
    assert receipt["status"] == 1
    assert token.functions.allowance(owner.address, SPENDER).call() == AMOUNT


def test_for_a_token_whose_domain_the_platform_does_not_list_the_wallet_approves_instead(
    ethereum_local: DeployedChain,
) -> None:
    """A salted EIP-5267 domain (fields 0x1f): the wallet signed a permit under the four-field domain without the salt,
    which the token refuses (ERC2612InvalidSigner), and the platform's refusal read "(already used?)"."""
    token, owner = _token(ethereum_local, "MockSaltedDomainERC20"), Account.create()
    rpc = ethereum_local.devnet.rpc_url
    ethereum_local.w3.provider.make_request("anvil_setBalance", [owner.address, hex(10**18)])  # type: ignore[arg-type]
    deadline = int(ethereum_local.w3.eth.get_block("latest")["timestamp"]) + 3_600

    assert asyncio.run(_listed(ethereum_local, token.address)) is None
    assert sign_permit(owner, rpc, token.address, SPENDER, AMOUNT, deadline) is None
    assert permit_or_approve(owner, rpc, token.address, SPENDER, AMOUNT, deadline) is None
    assert token.functions.allowance(owner.address, SPENDER).call() == AMOUNT
