"""The collateral permit's check on a real anvil, for a token with EIP-5267's ``eip712Domain()`` and for one without
it (older permit tokens: USDC's FiatToken, wstETH): both are read by their ``DOMAIN_SEPARATOR()``, so the borrower's
permit is taken from either, and a permit another key signed is refused from either. The domain ``GET /v1/platform``
lists for a token is read from either too, and a permit signed under it is taken; a token whose EIP-5267 domain is
not the four fields a permit's domain here has (a salt added) lists none, rather than one it does not check permits
under."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractCustomError

from aggregator.accept_saga import QuoteView
from aggregator.errors import InvalidPermit, QuoteExpired
from aggregator.permit import CollateralPermit, check_permit
from aggregator.token_domains import domain_separator, read_token_domain
from chain.artifacts import load_artifact
from chain.signers import devnet_account
from contracts.typed_data import Permit, TokenDomain, permit_typed_data, sign
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

COLLATERAL = 10**18
SPENDER = to_checksum_address("0x" + "5e" * 20)


def _token(chain: DeployedChain, contract: str) -> Any:
    artifact = load_artifact(contract)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deployer = devnet_account(0).address
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        factory.constructor("Staked Collateral", "STC", 18).transact({"from": deployer})
    )
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _quote(chain: DeployedChain, token: str, borrower: str, **offered: Any) -> QuoteView:
    offer = {"borrower": borrower, "collateralAsset": token, "collateralAmount": str(COLLATERAL), **offered}
    return QuoteView(
        "q", "r", "b", "p", "pool", chain.name, chain.chain_id, SPENDER, offer, "0x", "0x", {}, "0x", {}, "quoted",
        datetime.now(UTC) + timedelta(hours=1), "0",
    )  # fmt: skip


def _permit(chain: DeployedChain, token: str, signer: LocalAccount, owner: str) -> CollateralPermit:
    deadline = int(chain.w3.eth.get_block("latest")["timestamp"]) + 3_600
    domain = TokenDomain("Staked Collateral", "1", chain.chain_id, to_checksum_address(token))
    signature = sign(
        permit_typed_data(domain, Permit(to_checksum_address(owner), SPENDER, COLLATERAL, 0, deadline)), signer.key
    )
    return CollateralPermit(COLLATERAL, deadline, signature[64], signature[:32], signature[32:64])


@pytest.mark.parametrize("contract", ["MockERC20", "MockLegacyPermitERC20"])
def test_a_permit_is_checked_under_the_tokens_domain_separator(ethereum_local: DeployedChain, contract: str) -> None:
    token = _token(ethereum_local, contract)
    borrower, stranger = Account.create(), Account.create()
    quote = _quote(ethereum_local, token.address, borrower.address)
    w3 = AsyncWeb3(AsyncHTTPProvider(ethereum_local.devnet.rpc_url))

    asyncio.run(check_permit(w3, quote, _permit(ethereum_local, token.address, borrower, borrower.address)))
    with pytest.raises(InvalidPermit) as refused:
        asyncio.run(check_permit(w3, quote, _permit(ethereum_local, token.address, stranger, borrower.address)))
    assert refused.value.field == "permit.signature"


@pytest.mark.parametrize("contract", ["MockERC20", "MockLegacyPermitERC20"])
def test_the_listed_permit_domain_is_the_one_the_token_checks_permits_under(
    ethereum_local: DeployedChain, contract: str
) -> None:
    token = _token(ethereum_local, contract)
    borrower = Account.create()
    w3 = AsyncWeb3(AsyncHTTPProvider(ethereum_local.devnet.rpc_url))
    domain = asyncio.run(read_token_domain(w3, ethereum_local.chain_id, token.address))
    assert domain == TokenDomain("Staked Collateral", "1", ethereum_local.chain_id, token.address)

    deadline = int(ethereum_local.w3.eth.get_block("latest")["timestamp"]) + 3_600
    document = permit_typed_data(domain, Permit(borrower.address, SPENDER, COLLATERAL, 0, deadline))
    signed = Account.sign_typed_data(borrower.key, full_message=document)  # as a wallet signs it
    permit = CollateralPermit(
        COLLATERAL, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    )
    asyncio.run(check_permit(w3, _quote(ethereum_local, token.address, borrower.address), permit))


def test_a_token_whose_domain_adds_a_salt_lists_no_domain(ethereum_local: DeployedChain) -> None:
    """MockSaltedDomainERC20 reports EIP-5267 fields 0x1f (a salt beside name, version, chain id and contract) and
    checks permits under that domain. The four-field domain built from its ``eip712Domain()`` was listed before; a
    permit a wallet signs under it is refused by the token (the accept's permit then failed, or was ignored while an
    allowance stood), so no domain is listed: the borrower approves instead."""
    token = _token(ethereum_local, "MockSaltedDomainERC20")
    borrower = Account.create()
    four_fields = TokenDomain("Staked Collateral", "1", ethereum_local.chain_id, token.address)
    assert token.functions.eip712Domain().call()[0] == b"\x1f"
    assert domain_separator(four_fields) != bytes(token.functions.DOMAIN_SEPARATOR().call())
    permit = _permit(ethereum_local, token.address, borrower, borrower.address)  # under the four-field domain
    with pytest.raises(ContractCustomError):  # ERC2612InvalidSigner
        token.functions.permit(
            borrower.address, SPENDER, COLLATERAL, permit.deadline, permit.v, permit.r, permit.s
        ).call()

    w3 = AsyncWeb3(AsyncHTTPProvider(ethereum_local.devnet.rpc_url))
    assert asyncio.run(read_token_domain(w3, ethereum_local.chain_id, token.address)) is None


def test_an_address_without_a_permit_token_lists_no_domain(ethereum_local: DeployedChain) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider(ethereum_local.devnet.rpc_url))
    assert asyncio.run(read_token_domain(w3, ethereum_local.chain_id, SPENDER)) is None  # no code there


def test_an_offer_past_its_expiry_by_the_chains_time_is_an_expired_quote_not_a_bad_permit(
    ethereum_local: DeployedChain,
) -> None:
    """The chain judges the offer by its block time, which may run ahead of the platform's clock (a devnet moved on
    with evm_increaseTime): the accept is told the quote expired there, not that the permit's deadline did."""
    token = _token(ethereum_local, "MockERC20")
    borrower = Account.create()
    w3 = AsyncWeb3(AsyncHTTPProvider(ethereum_local.devnet.rpc_url))
    chain_now = int(ethereum_local.w3.eth.get_block("latest")["timestamp"])
    permit = _permit(ethereum_local, token.address, borrower, borrower.address)
    expired = _quote(ethereum_local, token.address, borrower.address, expiry=str(chain_now))
    with pytest.raises(QuoteExpired) as refused:
        asyncio.run(check_permit(w3, expired, permit))
    assert f"expired at {chain_now} by {ethereum_local.name}'s time" in str(refused.value)
    live = _quote(ethereum_local, token.address, borrower.address, expiry=str(chain_now + 600))
    asyncio.run(check_permit(w3, live, permit))
