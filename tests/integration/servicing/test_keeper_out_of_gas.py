"""The keeper's account out of gas over several rounds, on the package's own devnet with the ledger on PostgreSQL: a
loan under water the keeper would liquidate, and a closed loan's collateral left claimable, wait while the account
is empty (``anvil_setBalance`` to 0). The first round has the liquidation refused and defers the claim; the next
rounds send nothing — no failed intent more, however many rounds — and it is said once: an error naming
the account and the chain, the gauge ``creditmesh_operator_unfunded{role="keeper"}``, and the admins' ``GET /health``
showing the keeper ``degraded``. Once the account is funded again, the next round liquidates the loan and claims the
collateral, and the alert clears. Before, every round (every 5 s by default) left one more failed liquidation per
loan, without end, and the fifth claim refused for the account's funds ended the loan's collateral sweep for good."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from eth_utils.address import to_checksum_address
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from web3.types import RPCEndpoint

from aggregator.indexer import index_to_head
from aggregator.platform import connect_chain
from aggregator.repaying import MAX_CLAIM_ATTEMPTS, claim_collateral
from aggregator.repaying import claim_intent_key as relayed_claim_key
from aggregator.servicing.keeper import Keeper, claim_intent_key, liquidation_intent_key
from aggregator.servicing.sender_funds import refused_for_funds
from chain.client import ChainClient
from chain.errors import GasEstimationFailed
from chain.fees import NOT_THE_SENDERS_FUNDS
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import Call, TransactionManager
from store.chain import CONFIRMED, FAILED, SqlChainStore
from store.chain_rows import ChainIntentRow
from store.db import Database
from tests.contracts.harness import DEPLOYER, Harness
from tests.integration.servicing.conftest import (
    admin_health,
    closed_with_a_blocking_token,
    intent_status,
    out_of_gas,
)
from tests.integration.servicing.test_keeper import _open_loan
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

KEEPER = devnet_signer(Role.KEEPER)
ROUNDS = 5


@pytest.fixture
async def keeper(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[Keeper]:
    """The package chain's keeper with the keeper's account, its settings the defaults (a minute's first pause)."""
    client = await ChainClient(own_chain.config).connect()
    store = SqlChainStore(servicing_db.sessions)
    transactions = await TransactionManager(client, KEEPER, store, revert_artifacts=REVERT_ARTIFACTS).start()
    yield Keeper(client, own_chain.record, servicing_db, transactions, holder="keeper-out-of-gas")
    await transactions.close()
    await client.close()


def _under_water(harness: Harness, database: Database) -> int:
    """5,000 USDC against 3 WETH at $3,000 (recorded in the ledger), WETH then moved to $2,000: health 0.99."""
    harness.set_weth_price(3_000)
    loan_ref = _open_loan(harness, database)
    harness.set_weth_price(2_000)
    return loan_ref


async def _claimable(own_chain: DeployedChain, database: Database, reader: str) -> int:
    """A loan its borrower closed on-chain while its collateral token refused them, indexed, the token willing now:
    its collateral is the keeper's to claim."""
    harness = Harness(own_chain)
    borrower, token, loan_ref, first_block = closed_with_a_blocking_token(harness)
    await index_to_head(own_chain.config, own_chain.record, database, first_block, reader=reader)
    harness.send(token.functions.setBlocked(borrower.address, False), DEPLOYER)
    return loan_ref


def _failed(database: Database) -> int:
    """How many of the keeper's intents the node refused, ever."""
    with database.unit_of_work() as uow:
        query = select(func.count()).where(ChainIntentRow.sender == KEEPER.address, ChainIntentRow.status == FAILED)
        return int(uow.session.scalar(query) or 0)


def _starved_gauge(keeper: Keeper) -> float | None:
    labels = {"chain": str(keeper.chain_id), "role": "keeper"}
    return REGISTRY.get_sample_value("creditmesh_operator_unfunded", labels)


async def test_rounds_back_off_while_the_keeper_cannot_pay_and_liquidate_once_it_is_funded(
    own_chain: DeployedChain, servicing_db: Database, keeper: Keeper, caplog: pytest.LogCaptureFixture
) -> None:
    claimed_ref = await _claimable(own_chain, servicing_db, "keeper-out-of-gas")
    harness = Harness(own_chain)
    loan_ref = _under_water(harness, servicing_db)
    liquidations = [liquidation_intent_key(own_chain.chain_id, keeper.chain.manager, loan_ref, n) for n in (1, 2)]
    claims = [claim_intent_key(own_chain.chain_id, keeper.chain.manager, claimed_ref, n) for n in (1, 2)]
    failed_before = _failed(servicing_db)

    with out_of_gas(own_chain, KEEPER.address), caplog.at_level(logging.ERROR, "aggregator.servicing.sender_funds"):
        reports = [await keeper.run_round() for _ in range(ROUNDS)]
        starved = await admin_health(keeper.client, {Role.KEEPER: keeper.transactions})
        liquidated = [await intent_status(keeper.transactions, key) for key in liquidations]
        claimed = [await intent_status(keeper.transactions, key) for key in claims]

    assert liquidated == [FAILED, None], "one liquidation refused, none more in the rounds after"
    assert claimed == [None, None], "the claim deferred in the round that had the liquidation refused, and after"
    assert _failed(servicing_db) - failed_before == 1, "one failed intent over all the rounds"
    assert all(report.sent == [] and report.claimed == {} for report in reports)
    assert "insufficient funds" in reports[0].skipped[loan_ref]
    for report in reports[1:]:
        assert "liquidate deferred" in report.skipped[loan_ref]
        assert KEEPER.address in report.skipped[loan_ref]
    assert all("claimCollateral deferred" in report.unclaimed[claimed_ref] for report in reports)
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR and "cannot pay for gas" in r.getMessage()]
    assert len(alerts) == 1, "said once, not every round"
    assert KEEPER.address in alerts[0].getMessage()
    assert str(keeper.chain_id) in alerts[0].getMessage()
    assert _starved_gauge(keeper) == 1
    assert starved["status"] == "degraded"
    assert starved["chains"]["servicing"]["ok"] is True, "the chain's RPC is fine: the keeper's account is not"
    account = starved["chains"]["servicing"]["keeper"]
    assert (account["address"], account["status"]) == (KEEPER.address, "degraded")
    assert "insufficient funds" in account["detail"]
    assert "operator" not in starved["chains"]["servicing"], "this process has no operator key"

    funded = await keeper.run_round()  # the account funded again: its balance pays for what was refused
    assert [(sent.loan_ref, sent.action) for sent in funded.sent] == [(loan_ref, "liquidate")], funded.skipped
    assert set(funded.claimed) == {claimed_ref}, funded.unclaimed
    assert [await intent_status(keeper.transactions, key) for key in liquidations] == [FAILED, CONFIRMED]
    assert await intent_status(keeper.transactions, claims[0]) == CONFIRMED
    assert _starved_gauge(keeper) == 0
    healthy = await admin_health(keeper.client, {Role.KEEPER: keeper.transactions})
    assert (healthy["status"], healthy["chains"]["servicing"]["keeper"]["status"]) == ("ok", "ok")


async def test_claims_refused_for_the_keeper_s_funds_do_not_use_up_its_attempts(
    own_chain: DeployedChain, servicing_db: Database, keeper: Keeper
) -> None:
    """More refusals than ``MAX_CLAIM_ATTEMPTS`` over a long outage (each round's pause run out: the refused
    intents dated back past it) leave the claim to be sent once the account is funded: a refusal for the account's
    funds never reached the token. Before, the fifth ended the keeper's sweep of the loan, whatever came after."""
    loan_ref = await _claimable(own_chain, servicing_db, "keeper-claim-attempts")
    refusals = MAX_CLAIM_ATTEMPTS + 2
    with out_of_gas(own_chain, KEEPER.address):
        for _ in range(refusals):
            report = await keeper.run_round()
            assert "insufficient funds" in report.unclaimed[loan_ref]
            with servicing_db.unit_of_work() as uow:  # two hours on: past the longest pause
                uow.session.execute(
                    update(ChainIntentRow)
                    .where(ChainIntentRow.sender == KEEPER.address, ChainIntentRow.status == FAILED)
                    .values(updated_at=datetime.now(UTC) - timedelta(hours=2))
                )
                uow.commit()

    funded = await keeper.run_round()
    assert set(funded.claimed) == {loan_ref}, funded.unclaimed
    key = claim_intent_key(own_chain.chain_id, keeper.chain.manager, loan_ref, refusals + 1)
    assert await intent_status(keeper.transactions, key) == CONFIRMED


#: runtime code that runs out of gas whatever it is given (JUMPDEST PUSH1 0 JUMP): anvil refuses its estimate with
#: "Out of gas: gas required exceeds allowance: <the block gas limit>", from any account
GAS_SINK = "0x5b600056"


async def test_claims_refused_at_the_estimate_for_a_call_out_of_gas_count_and_the_keeper_is_not_starved(
    own_chain: DeployedChain, servicing_db: Database, keeper: Keeper
) -> None:
    """The keeper's account holds plenty of ETH, and the node refused its claim attempts at ``eth_estimateGas`` with
    "gas required exceeds allowance" because the call needs more gas than a block holds. Our contracts cannot be made
    to run out of gas at anvil's cap (a token that burns the gas makes ``claimCollateral`` revert instead), so each
    attempt is the keeper's real send of a call that does, stored under the claim's key, as the keeper reads it.
    They count: after ``MAX_CLAIM_ATTEMPTS`` the sweep stops, and the account is not said to be unable to pay. Before,
    each was taken for a refusal for the keeper's funds, not counted, and the claims were sent on past their
    attempts."""
    loan_ref = await _claimable(own_chain, servicing_db, "keeper-gas-cap")
    sink = Call(to=to_checksum_address("0x" + "5e" * 20))
    own_chain.w3.provider.make_request(RPCEndpoint("anvil_setCode"), [sink.to, GAS_SINK])
    keys = [claim_intent_key(own_chain.chain_id, keeper.chain.manager, loan_ref, n) for n in range(1, 7)]
    for key in keys[:MAX_CLAIM_ATTEMPTS]:
        with pytest.raises(GasEstimationFailed, match="gas required exceeds allowance"):
            await keeper.transactions.submit(key, sink)

    report = await keeper.run_round()

    assert report.unclaimed[loan_ref] == f"{MAX_CLAIM_ATTEMPTS} claims failed: not sent again", report.claimed
    assert await intent_status(keeper.transactions, keys[MAX_CLAIM_ATTEMPTS]) is None
    stored = await keeper.transactions.store.get_intent(keys[0])
    assert stored is not None
    assert "not the sender's funds" in str(stored.error), stored.error
    assert "insufficient funds" not in str(stored.error)
    assert _starved_gauge(keeper) == 0
    healthy = await admin_health(keeper.client, {Role.KEEPER: keeper.transactions})
    assert healthy["chains"]["servicing"]["keeper"]["status"] == "ok"


async def test_an_estimate_without_a_fee_is_capped_by_the_block_whatever_the_balance(
    own_chain: DeployedChain, keeper: Keeper
) -> None:
    """Why "gas required exceeds allowance" is never the account's funds for us: anvil caps an estimate by what the
    balance buys only when the estimate carries a fee. The keeper holding 10**15 wei, a call that runs out of gas is
    allowed 500,000 gas with a 2 gwei fee and the whole block without one, as our estimates are sent; the keeper's
    own send of it is stored as not the sender's funds."""
    sink = to_checksum_address("0x" + "5f" * 20)
    own_chain.w3.provider.make_request(RPCEndpoint("anvil_setCode"), [sink, GAS_SINK])
    fee, cap = 2 * 10**9, int(own_chain.w3.eth.get_block("latest")["gasLimit"])

    def refusal(**fees: str) -> str:
        request = {"from": KEEPER.address, "to": sink} | fees
        answer = own_chain.w3.provider.make_request(RPCEndpoint("eth_estimateGas"), [request])
        return str(answer["error"]["message"])

    with out_of_gas(own_chain, KEEPER.address):
        own_chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [KEEPER.address, hex(10**15)])
        with_fee = refusal(maxFeePerGas=hex(fee), maxPriorityFeePerGas=hex(fee))
        assert "gas required exceeds allowance: 500000" in with_fee, "what 10**15 wei buys at 2 gwei"
        assert f"gas required exceeds allowance: {cap}" in refusal(), "no fee: the block gas limit"
        key = claim_intent_key(own_chain.chain_id, keeper.chain.manager, 10**6, 1)  # no such loan
        with pytest.raises(GasEstimationFailed, match=f"gas required exceeds allowance: {cap}"):
            await keeper.transactions.submit(key, Call(to=sink))
        stored = await keeper.transactions.store.get_intent(key)
        assert stored is not None
        assert NOT_THE_SENDERS_FUNDS in str(stored.error), stored.error
        assert not refused_for_funds(stored)


async def test_a_claim_the_relayer_gave_up_for_its_funds_is_swept_by_the_keeper(
    own_chain: DeployedChain, servicing_db: Database, keeper: Keeper
) -> None:
    """The relayer's claim after a close (``repaying.claim_collateral``) counts the attempts the node refused for the
    relayer's funds towards its five and then stops; the keeper's sweep, which leaves a loan to the relayer only while
    one of its attempts is in flight, claims the collateral for the borrower."""
    loan_ref = await _claimable(own_chain, servicing_db, "relayer-gave-up")
    relayer = devnet_signer(Role.RELAYER)
    runtime = await connect_chain(own_chain.config, own_chain.record, relayer, SqlChainStore(servicing_db.sessions))
    try:
        with out_of_gas(own_chain, relayer.address):
            for _ in range(MAX_CLAIM_ATTEMPTS + 1):
                assert await claim_collateral(runtime, loan_ref, 5) is None
        assert await claim_collateral(runtime, loan_ref, 5) is None, "its five spent: not sent, though funded"
    finally:
        await runtime.close()
    relayed = relayed_claim_key(own_chain.chain_id, keeper.chain.manager, loan_ref, MAX_CLAIM_ATTEMPTS)
    assert await intent_status(keeper.transactions, relayed) == FAILED

    report = await keeper.run_round()

    assert set(report.claimed) == {loan_ref}, report.unclaimed
