"""ChainOnchainSource on the three real devnets: loans opened, repaid and defaulted per chain, health, nonce, age,
and chains that are down, hang or answer garbage skipped by name; chain.logs.fetch_logs halving ranges a node
refuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.client import ChainClient
from chain.config import ChainConfig
from chain.devnet import LOOPBACK, free_port
from chain.logs import LogQueryError, fetch_logs
from risk.onchain import MIN_REPAID_SECONDS, combine, thin_wallet
from risk.onchain_source import HEALTH_FACTOR_ONE, ChainOnchainSource
from tests.contracts.harness import OPERATOR, USDC, WETH, Harness, loan_fields
from tests.support.bad_rpc import bad_rpc
from tests.support.devnet import DeployedChain
from tests.support.served import posts_served

pytestmark = pytest.mark.integration

DAY = 86_400


@contextlib.contextmanager
def snapshots(chains: dict[str, DeployedChain]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for chain in chains.values():
            stack.enter_context(chain.snapshot())
        yield


@asynccontextmanager
async def source_over(
    chains: dict[str, DeployedChain],
    configs: dict[str, ChainConfig] | None = None,
    rpc_timeout: float = 3.0,
    chain_timeout: float = 8.0,
) -> AsyncIterator[ChainOnchainSource]:
    """A source over clients of ``chains`` (``configs`` overrides a chain's RPC, e.g. to a dead port)."""
    configs = {name: chain.config for name, chain in chains.items()} | (configs or {})
    clients = {name: ChainClient(config, timeout=30.0) for name, config in configs.items()}
    try:
        records = {name: chain.record for name, chain in chains.items()}
        yield ChainOnchainSource(clients, records, rpc_timeout=rpc_timeout, chain_timeout=chain_timeout)
    finally:
        for client in clients.values():
            await client.close()


def new_borrower(harness: Harness, borrower: LocalAccount) -> int:
    """Fund a fresh wallet on one chain and approve our contracts (6 transactions); returns its first tx's block."""
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, usdc=1_000 * USDC, weth=10 * WETH)
    first_block = harness.w3.eth.block_number + 1  # anvil mines each transaction in its own block
    harness.approve_all(borrower.address)
    return first_block


def health_bps(harness: Harness, loan_id: int, block: int) -> int:
    factor = int(harness.manager.functions.healthFactor(loan_id).call(block_identifier=block))
    return factor * 10_000 // HEALTH_FACTOR_ONE


async def test_fresh_wallet_has_no_history_on_any_chain(devnet_chains: dict[str, DeployedChain]) -> None:
    wallet = Account.create().address
    async with source_over(devnet_chains) as source:
        reading = await source.read(wallet)
    assert reading.skipped == {}
    assert reading.features.chain_ids == (31337, 31338, 31339)
    assert (reading.features.loans_opened, reading.features.loans_repaid, reading.features.loans_defaulted) == (0, 0, 0)
    assert reading.features.tx_count == 0
    assert reading.features.wallet_age_days is None
    assert reading.features.min_health_factor_bps is None
    assert reading.features.complete
    assert not reading.features.contract_wallet
    assert [r.code for r, _ in combine(reading.features).reasons] == ["R32"]  # read everywhere: truly no history


async def test_a_contract_wallet_is_told_apart_from_its_nonce(devnet_chains: dict[str, DeployedChain]) -> None:
    """A contract wallet's nonce (1 from its creation) is not its transaction count: its code is read beside it."""
    contract = devnet_chains["ethereum-local"].record.address("CollateralManager")  # any contract stands for one
    async with source_over(devnet_chains) as source:
        reading = await source.read(contract)
    assert reading.skipped == {}
    assert reading.readings["ethereum-local"].contract
    assert reading.features.contract_wallet
    assert reading.features.tx_count < 10
    # judged by its age alone (dated from its creation): a year old, it is not a limited history whatever its nonce
    assert not thin_wallet(replace(reading.features, wallet_age_days=365))
    assert thin_wallet(replace(reading.features, wallet_age_days=365, contract_wallet=False))


async def test_every_chain_down_is_no_history_read_not_a_thin_wallet(devnet_chains: dict[str, DeployedChain]) -> None:
    """An RPC outage on every chain: nothing read, so no on-chain adjustment and no "limited history" reason."""
    dead = {
        name: chain.config.model_copy(update={"rpc_urls": [f"http://{LOOPBACK}:{free_port()}"]})
        for name, chain in devnet_chains.items()
    }
    async with source_over(devnet_chains, dead) as source:
        reading = await source.read(Account.create().address)
    assert sorted(reading.skipped) == sorted(devnet_chains)
    assert reading.features.chain_ids == ()
    assert not reading.features.complete
    assert (combine(reading.features).points, combine(reading.features).reasons) == (0, ())


async def test_loans_on_three_chains_are_counted(devnet_chains: dict[str, DeployedChain]) -> None:
    borrower: LocalAccount = Account.create()
    with snapshots(devnet_chains):
        ethereum, polygon, arbitrum = (
            Harness(devnet_chains[name]) for name in ("ethereum-local", "polygon-local", "arbitrum-local")
        )
        first_blocks = {h.chain.name: new_borrower(h, borrower) for h in (ethereum, polygon, arbitrum)}
        # ethereum-local: two loans, one repaid in full by its borrower.
        repaid, still_open = ethereum.open_loan(borrower)[0], ethereum.open_loan(borrower)[0]
        ethereum.advance(8 * DAY)  # held long enough to count (MIN_REPAID_SECONDS)
        ethereum.send(ethereum.aggregator.functions.close(repaid), borrower.address)
        assert loan_fields(ethereum.aggregator, repaid)["status"] == 2  # LoanStatus.Repaid
        # polygon-local: one loan closed by a liquidator (not repaid by its borrower), one whose collateral then
        # lost a third of its value.
        weak = polygon.open_loan(borrower)[0]
        risky = polygon.open_loan(
            borrower, principal=2_000 * USDC, originationFee=0, rateBps=max(900, polygon.min_rate(2_000 * USDC))
        )[0]
        polygon.set_weth_price(2_200)  # the risky loan's health factor 0.9075: liquidated in full
        liquidator: LocalAccount = Account.create()
        new_borrower(polygon, liquidator)
        polygon.fund(liquidator.address, usdc=5_000 * USDC)
        polygon.send(polygon.manager.functions.liquidate(risky, 10_000 * USDC), liquidator.address)
        assert loan_fields(polygon.aggregator, risky)["status"] == 4  # LoanStatus.Liquidated
        polygon.set_weth_price(2_000)
        # arbitrum-local: one loan left unpaid past maturity and grace, marked in default by the operator.
        defaulted = arbitrum.open_loan(borrower)[0]
        arbitrum.advance(30 * DAY + 7 * DAY + 1)
        arbitrum.send(arbitrum.aggregator.functions.markDefault(defaulted), OPERATOR)
        # Someone else's loan on the same chain is not ours.
        other: LocalAccount = Account.create()
        new_borrower(polygon, other)
        polygon.open_loan(other)

        async with source_over(devnet_chains) as source:
            reading = await source.read(borrower.address)

        assert reading.skipped == {}
        features = reading.features
        assert features.chain_ids == (31337, 31338, 31339)
        assert (features.loans_opened, features.loans_repaid, features.loans_defaulted) == (5, 1, 1)
        per_chain = {name: (r.loans_opened, r.loans_repaid, r.loans_defaulted) for name, r in reading.readings.items()}
        assert per_chain == {"ethereum-local": (2, 1, 0), "polygon-local": (2, 0, 0), "arbitrum-local": (1, 0, 1)}
        # Nonces: 6 approvals per chain, plus the close on ethereum-local (the relayer sent the openLoans).
        assert features.tx_count == 6 * 3 + 1
        # Health: the lowest over the two open loans, as the contract computes it at the block read.
        open_health = {
            "ethereum-local": health_bps(ethereum, still_open, reading.readings["ethereum-local"].head_block),
            "polygon-local": health_bps(polygon, weak, reading.readings["polygon-local"].head_block),
        }
        assert open_health["polygon-local"] < open_health["ethereum-local"]
        assert features.min_health_factor_bps == open_health["polygon-local"]
        assert reading.readings["arbitrum-local"].min_health_factor_bps is None  # its only loan is in default
        # Age: the bisected first transaction is the first approval; arbitrum-local's clock moved 37 days since.
        for harness in (ethereum, polygon, arbitrum):
            expected = harness.w3.eth.get_block(first_blocks[harness.chain.name])["timestamp"]
            assert reading.readings[harness.chain.name].first_tx_timestamp == expected
        assert features.wallet_age_days == 37
        assert [r.code for r in combine(features).declines] == ["R30"]  # the default declines


async def test_a_loan_cancelled_unfunded_is_neither_repaid_nor_open(devnet_chains: dict[str, DeployedChain]) -> None:
    """A loan its lender never funded, cancelled by the operator, closes (``LoanClosed`` after ``LoanCancelled``):
    the borrower repaid nothing, so it earns no repaid-loan points; closed, it is not an open loan either."""
    borrower: LocalAccount = Account.create()
    with snapshots(devnet_chains):
        ethereum = Harness(devnet_chains["ethereum-local"])
        new_borrower(ethereum, borrower)
        unfunded = ethereum.open_loan(borrower, pool=False)[0]
        ethereum.send(ethereum.aggregator.functions.cancelUnfunded(unfunded), OPERATOR)
        assert loan_fields(ethereum.aggregator, unfunded)["status"] == 5  # LoanStatus.Cancelled
        async with source_over(devnet_chains) as source:
            reading = await source.read(borrower.address)
    chain = reading.readings["ethereum-local"]
    assert (chain.loans_opened, chain.loans_repaid, chain.loans_defaulted) == (1, 0, 0)
    assert chain.min_health_factor_bps is None  # no open loan


async def test_only_a_loan_of_some_size_held_some_time_counts_as_repaid(
    devnet_chains: dict[str, DeployedChain],
) -> None:
    """Three loans of 1 USDC repaid at once earned the whole repaid-loan bonus (+30: a decline became grade A). A
    repaid loan counts from MIN_REPAID_PRINCIPAL_USD held MIN_REPAID_SECONDS; closing it is still a loan repaid."""
    borrower: LocalAccount = Account.create()
    with snapshots(devnet_chains):
        ethereum = Harness(devnet_chains["ethereum-local"])
        new_borrower(ethereum, borrower)
        tiny = [ethereum.open_loan(borrower, principal=1 * USDC, originationFee=0)[0] for _ in range(3)]
        quick = ethereum.open_loan(borrower)[0]  # 1,500 USDC, repaid within the minute
        for loan in [*tiny, quick]:
            ethereum.send(ethereum.aggregator.functions.close(loan), borrower.address)
        async with source_over(devnet_chains) as source:
            farmed = await source.read(borrower.address)
            held = ethereum.open_loan(borrower)[0]
            small_held = ethereum.open_loan(borrower, principal=200 * USDC, originationFee=0)[0]
            ethereum.advance(MIN_REPAID_SECONDS)
            for loan in (held, small_held):
                ethereum.send(ethereum.aggregator.functions.close(loan), borrower.address)
            seasoned = await source.read(borrower.address)
        assert all(loan_fields(ethereum.aggregator, loan)["status"] == 2 for loan in [*tiny, quick, held, small_held])
    assert farmed.readings["ethereum-local"].loans_opened == 4
    assert farmed.features.loans_repaid == 0
    assert combine(farmed.features).points <= 0
    assert seasoned.features.loans_repaid == 1  # 1,500 USDC held a week; 200 USDC is under the minimum


async def test_a_chain_that_is_down_is_skipped_and_named(devnet_chains: dict[str, DeployedChain]) -> None:
    borrower: LocalAccount = Account.create()
    with snapshots(devnet_chains):
        ethereum = Harness(devnet_chains["ethereum-local"])
        new_borrower(ethereum, borrower)
        ethereum.open_loan(borrower)
        arbitrum = devnet_chains["arbitrum-local"]
        dead = arbitrum.config.model_copy(update={"rpc_urls": [f"http://{LOOPBACK}:{free_port()}"]})
        async with source_over(devnet_chains, {"arbitrum-local": dead}) as source:
            reading = await source.read(borrower.address)
    assert list(reading.skipped) == ["arbitrum-local"]
    assert "RpcUnavailable" in reading.skipped["arbitrum-local"]
    assert reading.features.chain_ids == (31337, 31338)
    assert (reading.features.loans_opened, reading.features.tx_count) == (1, 6)


async def test_a_chain_whose_rpc_answers_garbage_is_skipped_and_named(
    devnet_chains: dict[str, DeployedChain],
) -> None:
    """An RPC answering HTTP 200 with an HTML page (a gateway in front of a sick node): a chain with no other URL is
    skipped and named, a chain with a healthy second URL is read through it, and the rest are read as ever."""
    polygon, arbitrum = devnet_chains["polygon-local"].config, devnet_chains["arbitrum-local"].config
    async with bad_rpc(polygon.chain_id) as sick, bad_rpc(arbitrum.chain_id) as sick_first:
        overrides = {
            "polygon-local": polygon.model_copy(update={"rpc_urls": [sick.url]}),
            "arbitrum-local": arbitrum.model_copy(update={"rpc_urls": [sick_first.url, *arbitrum.rpc_urls]}),
        }
        async with source_over(devnet_chains, overrides) as source:
            reading = await source.read(Account.create().address)
    assert list(reading.skipped) == ["polygon-local"]
    assert "RpcUnavailable" in reading.skipped["polygon-local"]
    assert "RpcBadAnswer" in reading.skipped["polygon-local"]
    assert sorted(reading.readings) == ["arbitrum-local", "ethereum-local"]
    assert reading.features.chain_ids == (31337, 31339)
    assert sick_first.asked[0] == "eth_chainId"


async def test_a_chain_that_hangs_is_skipped_within_its_deadline(devnet_chains: dict[str, DeployedChain]) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # hold the connection open until the client gives up

    server = await asyncio.start_server(never_answer, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    hanging = devnet_chains["polygon-local"].config.model_copy(update={"rpc_urls": [f"http://{LOOPBACK}:{port}"]})
    try:
        async with source_over(devnet_chains, {"polygon-local": hanging}, rpc_timeout=1.0, chain_timeout=2.0) as source:
            started = time.monotonic()
            reading = await source.read(Account.create().address)
            elapsed = time.monotonic() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert accepted, "the client never reached the hanging RPC"
    assert list(reading.skipped) == ["polygon-local"]
    assert "took over 1.0 s" in reading.skipped["polygon-local"]
    assert reading.features.chain_ids == (31337, 31339)
    assert elapsed < 20  # the deadline held, with a wide margin over the 1 s RPC timeout


@asynccontextmanager
async def range_capped_proxy(
    upstream: str, max_blocks: int
) -> AsyncIterator[tuple[str, list[int], list[int], list[list[str]]]]:
    """A JSON-RPC proxy that refuses eth_getLogs over more than ``max_blocks`` blocks, as hosted nodes do (in a
    batch too: that item answers with the error); yields its URL, the block spans of the eth_getLogs calls it
    passed on and refused, and the methods of each POST (a batch's in order)."""
    passed: list[int] = []
    refused: list[int] = []
    posts: list[list[str]] = []
    session = aiohttp.ClientSession()

    async def answer(item: dict[str, Any]) -> Any:
        if item["method"] == "eth_getLogs":
            to_block = item["params"][0]["toBlock"]
            if to_block == "latest":
                async with session.post(
                    upstream, json={"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"}
                ) as head:
                    to_block = (await head.json())["result"]
            span = int(to_block, 16) - int(item["params"][0]["fromBlock"], 16) + 1
            if span > max_blocks:
                refused.append(span)
                error = {"code": -32005, "message": f"query exceeds max block range {max_blocks}"}
                return {"jsonrpc": "2.0", "id": item["id"], "error": error}
            passed.append(span)
        async with session.post(upstream, json=item) as answered:
            return await answered.json()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        posts.append([item["method"] for item in items])
        answers = [await answer(item) for item in items]
        return web.Response(
            text=json.dumps(answers if isinstance(body, list) else answers[0]), content_type="application/json"
        )

    try:
        async with posts_served(handle) as url:
            yield url, passed, refused, posts
    finally:
        await session.close()


async def test_fetch_logs_halves_ranges_the_node_refuses(ethereum_local: DeployedChain) -> None:
    harness = Harness(ethereum_local)
    borrower: LocalAccount = Account.create()
    new_borrower(harness, borrower)
    loans = [harness.open_loan(borrower)[0] for _ in range(3)]
    aggregator = ethereum_local.record.contracts["CreditAggregator"]
    abi = harness.aggregator.abi
    async with range_capped_proxy(ethereum_local.config.rpc_urls[0], max_blocks=16) as (url, passed, refused, _):
        client = ChainClient(ethereum_local.config.model_copy(update={"rpc_urls": [url]}), timeout=10.0)
        try:
            head = await client.head()
            found = await fetch_logs(
                client,
                aggregator.address,
                abi,
                "LoanOpened",
                {"borrower": borrower.address},
                from_block=aggregator.block,
                to_block=head,
                max_range=1_000,
            )
            nothing = await fetch_logs(
                client,
                aggregator.address,
                abi,
                ("LoanClosed", "LoanDefaulted"),
                {"loanId": loans},
                from_block=aggregator.block,
                to_block=head,
                max_range=16,
            )
            with pytest.raises(LogQueryError, match="no indexed argument"):
                await fetch_logs(
                    client,
                    aggregator.address,
                    abi,
                    "LoanClosed",
                    {"borrower": borrower.address},
                    from_block=0,
                    to_block=head,
                )
        finally:
            await client.close()
    assert [entry.args["loanId"] for entry in found] == loans
    assert all(entry.args["borrower"] == borrower.address for entry in found)
    assert refused  # the wide first ranges were refused ...
    assert max(passed) <= 16  # ... and halved until they passed
    assert sum(passed) == 2 * (head - aggregator.block + 1)  # both queries covered every block once
    assert nothing == []


async def test_a_chain_s_nonce_and_loans_are_one_batch_and_a_refused_one_is_asked_again(
    ethereum_local: DeployedChain,
) -> None:
    """The wallet's nonce and its LoanOpened query go to the node as one JSON-RPC batch, with the head block once the
    chain's head is known (one round trip); a node that refuses the batch's log range gets the calls again one at a
    time (ranges halved): the same reading either way."""
    harness = Harness(ethereum_local)
    borrower: LocalAccount = Account.create()
    new_borrower(harness, borrower)
    harness.open_loan(borrower)
    readings = {}
    at_once = ["eth_getBlockByNumber", "eth_getTransactionCount", "eth_getCode", "eth_getLogs"]
    for cap in (10**9, 16):
        async with range_capped_proxy(ethereum_local.config.rpc_urls[0], max_blocks=cap) as (url, _, refused, posts):
            client = ChainClient(ethereum_local.config.model_copy(update={"rpc_urls": [url]}), timeout=10.0)
            try:
                source = ChainOnchainSource({"ethereum-local": client}, {"ethereum-local": ethereum_local.record})
                readings[cap] = await source.read_chain("ethereum-local", borrower.address)
                # the head first, then the batch
                assert ["eth_getTransactionCount", "eth_getCode", "eth_getLogs"] in posts
                assert at_once not in posts
                posts.clear()
                # the chain's head known: head, nonce and loans in ONE batch (refused past the cap: two round trips)
                assert await source.read_chain("ethereum-local", borrower.address) == readings[cap]
                assert await source.read_chain("ethereum-local", borrower.address) == readings[cap]
            finally:
                await client.close()
        assert posts[0] == at_once
        # refused: the head read again on its own, and the one batch not tried again on that chain
        assert (["eth_getBlockByNumber"] in posts) == (cap == 16)
        assert posts.count(at_once) == (1 if cap == 16 else 2)
        assert bool(refused) == (cap == 16)
    assert readings[16] == readings[10**9]
    assert readings[16].loans_opened == 1
    assert readings[16].tx_count > 0  # its approvals
