"""``loan.defaulted`` end to end on the package's own devnet: a loan funded by ``sim-bank`` (its quote ours, the lender
configured with its webhook URL as ``CREDITMESH_HTTP_LENDERS`` registers it) passes maturity plus the grace period by
the chain's clock; the API process's workers (``CREDITMESH_WORKERS=defaulter,outbox``) mark it in default with the
operator's key, the ledger writes ``loan.defaulted`` to the outbox, and the relay posts it over HTTP to the lender's
receiver, signed with the lender's secret — after the loan's earlier events, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aggregator.platform import connect_chain
from api.settings import HttpLenderSetting, Settings
from api.workers import Workers
from chain.signers import Role, devnet_signer
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import RELAYER, USDC
from tests.integration.servicing.conftest import borrower_with_collateral, record_in_ledger
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote
from tests.support.receiver import EventReceiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LENDER, LENDER_SECRET = "sim-bank", "sim-bank-webhook-secret"
DAY = 86_400


async def test_a_loan_past_maturity_and_grace_reaches_its_lender_as_loan_defaulted_over_http(
    own_chain: DeployedChain, servicing_db: Database, tmp_path: Path
) -> None:
    harness, borrower = borrower_with_collateral(own_chain)
    offer = harness.offer(borrower.address, pool=False, principal=1_000 * USDC, originationFee=0, term=DAY)
    digest = "0x" + harness.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    add_quote(  # our quote of the offer, from the lender: the loan opened from it is the lender's
        servicing_db,
        borrower_address=borrower.address,
        offer_digest=digest,
        provider_id=LENDER,
        chain_name=own_chain.name,
        chain_id=own_chain.chain_id,
        contract=harness.aggregator.address,
        offer={"providerRef": "bank-ref-1"},
    )
    receipt = harness.send(harness.aggregator.functions.openLoan(*harness.open_args(offer, borrower.key)), RELAYER)
    record_in_ledger(servicing_db, own_chain, receipt)  # as the accept does: loan.opened is in the outbox
    with servicing_db.unit_of_work() as uow:
        (loan,) = uow.session.query(LoanRow).filter(LoanRow.offer_digest == digest).all()
        loan_id, loan_ref = loan.id, int(loan.onchain_loan_id or 0)
    grace = int(harness.aggregator.functions.gracePeriod().call())
    harness.advance(int(harness.loan(loan_ref)["maturity"]) + grace + 60 - harness.now())

    receiver = EventReceiver(LENDER_SECRET).start()
    settings = Settings(
        data_dir=tmp_path,
        workers="defaulter,outbox",
        http_lenders=[
            HttpLenderSetting(
                provider_id=LENDER, base_url="http://127.0.0.1:9", secret=LENDER_SECRET, webhook_url=receiver.url
            )
        ],
        outbound_allowed_networks=["127.0.0.0/8"],
        defaulter_interval_seconds=0.2,
        outbox_poll_seconds=0.1,
        servicing_lease_seconds=3,
        outbox_lease_seconds=3,
    )
    signers = {Role.OPERATOR: devnet_signer(Role.OPERATOR)}
    store = SqlChainStore(servicing_db.sessions)
    chain = await connect_chain(own_chain.config, own_chain.record, devnet_signer(Role.RELAYER), store, signers)
    workers = Workers().start(settings, servicing_db, {chain.name: chain})
    try:
        for _ in range(600):  # 60 s at most
            if any(e.type == "loan.defaulted" and e.loan_id == loan_id for e in receiver.events()):
                break
            await asyncio.sleep(0.1)
    finally:
        await workers.stop()
        await chain.close()
        receiver.stop()

    assert harness.loan(loan_ref)["status"] == 3  # LoanStatus.Defaulted, by the operator's markDefault
    assert receiver.refused == []  # every message carried a valid signature under the lender's secret
    events = [e for e in receiver.events() if e.loan_id == loan_id]
    types = [e.type for e in events]
    assert types[0] == "loan.opened"
    assert types[-1] == "loan.defaulted"
    assert set(types[1:-1]) <= {"loan.past_due"}
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))  # in the loan's order, none missing
    defaulted = events[-1]
    assert defaulted.header_event_id == defaulted.event_id
    assert defaulted.body["loan"]["provider_id"] == LENDER
    assert defaulted.body["loan"]["offer_ref"] == "bank-ref-1"
    assert defaulted.body["loan"]["status"] == "defaulted"
    assert defaulted.body["data"]["outstanding_principal"] == str(1_000 * USDC)
