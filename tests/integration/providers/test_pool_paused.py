"""A pool whose guardian paused it, or whose CreditAggregator is paused, declines with the pause named: its offer
could only revert at the accept (``fundLoan`` / ``openLoan``: ``EnforcedPause``), after the borrower signed it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from eth_utils.address import to_checksum_address
from web3.exceptions import ContractCustomError

from chain.client import ChainClient
from chain.signers import Role, devnet_signer
from providers.models import Decline
from providers.pool import PoolAdapter
from tests.support.devnet import DeployedChain
from tests.unit.providers.fakes import REQUEST

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def client(ethereum_local: DeployedChain) -> AsyncIterator[ChainClient]:
    chain = ChainClient(ethereum_local.config)
    yield chain
    await chain.close()


def _adapter(chain: DeployedChain, client: ChainClient) -> PoolAdapter:
    pool = chain.record.address("LendingPool:USDC")
    return PoolAdapter("ethereum-local", "USDC", to_checksum_address(pool), client.w3, lambda grade: 300)


def _pause(chain: DeployedChain, key: str) -> None:
    guardian = devnet_signer(Role.GUARDIAN).address
    contract = chain.contract(key)
    chain.w3.eth.wait_for_transaction_receipt(contract.functions.pause().transact({"from": guardian}))
    assert contract.functions.paused().call()


async def test_a_paused_pool_declines_naming_the_pause(ethereum_local: DeployedChain, client: ChainClient) -> None:
    adapter = _adapter(ethereum_local, client)
    offers = await adapter.quote(REQUEST)
    assert not isinstance(offers, Decline), "an unpaused pool quotes"

    _pause(ethereum_local, "LendingPool:USDC")
    pool = ethereum_local.contract("LendingPool:USDC")
    aggregator = ethereum_local.record.address("CreditAggregator")
    ethereum_local.w3.provider.make_request("anvil_impersonateAccount", [aggregator])  # type: ignore[arg-type]
    ethereum_local.w3.provider.make_request("anvil_setBalance", [aggregator, hex(10**20)])  # type: ignore[arg-type]
    offer = offers[0]
    with pytest.raises(ContractCustomError):  # what the offer met at the accept: EnforcedPause
        pool.functions.fundLoan(
            999, aggregator, offer.principal, offer.origination_fee, offer.rate_bps, offer.term_days * 86_400
        ).call({"from": aggregator})

    answer = await adapter.quote(REQUEST)
    assert isinstance(answer, Decline)
    assert answer.reason == "the pool is paused by its guardian: it funds no loan until unpaused"
    pinned = await adapter.quote(replace(REQUEST, chain_heads=_head(ethereum_local)))
    assert isinstance(pinned, Decline), "read at the request's head block too"
    assert "paused by its guardian" in pinned.reason


async def test_a_paused_credit_aggregator_makes_its_pools_decline(
    ethereum_local: DeployedChain, client: ChainClient
) -> None:
    adapter = _adapter(ethereum_local, client)
    assert not isinstance(await adapter.quote(REQUEST), Decline)
    _pause(ethereum_local, "CreditAggregator")
    answer = await adapter.quote(REQUEST)
    assert isinstance(answer, Decline)
    assert answer.reason == "the CreditAggregator on ethereum-local is paused: it opens no loan until unpaused"
    assert adapter.aggregator_address == ethereum_local.record.address("CreditAggregator")


def _head(chain: DeployedChain) -> tuple[tuple[str, int], ...]:
    return (("ethereum-local", chain.w3.eth.block_number),)
