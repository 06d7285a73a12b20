"""Relayed repayments over real HTTP against the session's devnets: a repayment or a permit whose deadline the
chain's time has passed is refused naming the field, not sent to be refused by the chain as an allowance it does not
have; ``wallet repay`` signs its deadlines by the chain's time, so it repays on a devnet whose clock was moved on; a
signed repayment whose transaction the relayer dropped is answered to be signed anew, not "ask again shortly"; of two
repayments of everything posted at once, the second is refused as the loan not repayable, nothing of it sent; a
relayed repayment reverted because the borrower's own repayment closed the loan first is that too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from aggregator.permit import CollateralPermit
from aggregator.repaying import SignedRepayment, repayment_call, repayment_intent_key
from api.wallet import repay_loan, sign_permit, signed_repayment
from contracts import typed_data
from contracts.typed_data import Domain, Repayment
from store.chain import DROPPED, IntentRecord, SqlChainStore
from store.db import Database
from tests.e2e.test_repayments import CHAIN, PROBLEM, _mint, _onchain_repayments, _open_pool_loan
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(shared_platform: RunningPlatform) -> RunningPlatform:
    """The e2e package's platform with default settings (``tests/e2e/conftest.py``)."""
    return shared_platform


@pytest.fixture(scope="module")
def borrower(platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]) -> tuple[LocalAccount, str, str]:
    """A borrower without ETH with an open pool loan of 1,000 USDC and USDC to repay it: wallet, loan id, API key.
    The module's tests are refused or repay a little of it."""
    wallet, loan_id, key = new_pool_loan(platform, devnet_chains[CHAIN])
    return wallet, loan_id, key


def new_pool_loan(platform: RunningPlatform, chain: DeployedChain) -> tuple[LocalAccount, str, str]:
    """A new borrower without ETH with an open pool loan of 1,000 USDC and USDC to repay it: its wallet, the loan's
    id and the borrower's API key."""
    wallet: LocalAccount = Account.create()
    _mint(chain, "WETH", wallet.address, 2 * 10**18)
    _mint(chain, "USDC", wallet.address, 50 * 10**6)
    loan_id, key = _open_pool_loan(platform, chain, wallet)
    return wallet, loan_id, key


def _chain_time(chain: DeployedChain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def _relayer(platform: RunningPlatform, key: str) -> ChecksumAddress:
    """The platform's relayer on the chain, as ``GET /v1/platform`` names it."""
    with platform.client(key) as client:
        chains = client.get("/v1/platform").raise_for_status().json()["chains"]
    return to_checksum_address(next(c["relayer"] for c in chains if c["name"] == CHAIN))


def _resigned(wallet: LocalAccount, loan: dict[str, Any], body: dict[str, Any], **changes: int) -> dict[str, Any]:
    """``body`` (of a repayment of ``body["amount"]`` USDC) signed again with another ``nonce`` or ``deadline``."""
    terms = {"nonce": int(body["nonce"]), "deadline": int(body["deadline"])} | changes
    amount = typed_data.REPAY_ALL if body["amount"] == "max" else int(Decimal(body["amount"]) * 10**6)
    repayment = Repayment(int(loan["onchain_loan_id"]), amount, terms["nonce"], terms["deadline"])
    document = typed_data.repayment_typed_data(Domain(int(loan["chain_id"]), loan["contract"]), repayment)
    signature = typed_data.sign(document, wallet.key)
    return body | {"nonce": str(terms["nonce"]), "deadline": terms["deadline"], "signature": "0x" + signature.hex()}


def _refusal(response: Any) -> tuple[int, str, str, str]:
    problem = response.json()
    error = (problem.get("errors") or [{}])[0]
    return response.status_code, problem["type"].rsplit("/", 1)[1], error.get("field", ""), error.get("message", "")


def test_an_expired_repayment_or_permit_is_refused_naming_it_before_anything_is_sent(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain], borrower: tuple[LocalAccount, str, str]
) -> None:
    """The permit's deadline was read and never compared with the chain's time: the repayment was sent, and the
    borrower told "the chain refused the repayment: ERC20InsufficientAllowance(…)"; a repayment past its own deadline
    was told the simulation's RepaymentExpired."""
    chain = devnet_chains[CHAIN]
    rpc, usdc = chain.devnet.rpc_url, chain.record.address("USDC")
    wallet, loan_id, key = borrower
    relayer = _relayer(platform, key)
    sent_before = chain.w3.eth.get_transaction_count(relayer)
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
        body = signed_repayment(wallet, loan, "1.00", rpc)
        past = _chain_time(chain) - 100
        stale_permit = body | {"permit": sign_permit(wallet, rpc, usdc, loan["contract"], 10**6, past)}
        refused = client.post(f"/v1/loans/{loan_id}/repayments", json=stale_permit)
        assert refused.headers["content-type"] == PROBLEM
        status, kind, field, message = _refusal(refused)
        assert (status, kind, field) == (422, "invalid-repayment", "permit.deadline"), refused.text
        assert message.startswith(f"expired at {past}; the chain's time is "), message

        late = client.post(f"/v1/loans/{loan_id}/repayments", json=_resigned(wallet, loan, body, deadline=past))
        status, kind, field, message = _refusal(late)
        assert (status, kind, field) == (422, "invalid-repayment", "deadline"), late.text
        assert message.startswith(f"expired at {past}; the chain's time is "), message
    assert chain.w3.eth.get_transaction_count(relayer) == sent_before, "nothing was sent"


@contextmanager
def _clock_moved_on(chain: DeployedChain, relayer: ChecksumAddress, seconds: int) -> Iterator[None]:
    """The chain's clock ``seconds`` ahead for the block; then the chain back as it was — the session's other tests
    quote on it, and a chain whose clock runs ahead is left out of quotes — mined past every block of the block, as
    after a reorganisation (``tests/e2e/test_pool_registration.py``), with the relayer's transaction count where the
    platform's nonce allocator left it."""
    rpc = chain.w3.provider.make_request
    snapshot = rpc("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        rpc("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        rpc("evm_mine", [])  # type: ignore[arg-type]
        yield
    finally:
        reached, sent = chain.w3.eth.block_number, chain.w3.eth.get_transaction_count(relayer, "pending")
        rpc("evm_revert", [snapshot])  # type: ignore[arg-type]
        rpc("anvil_setNonce", [relayer, hex(sent)])  # type: ignore[arg-type]
        rpc("anvil_mine", [hex(reached - chain.w3.eth.block_number + 1)])  # type: ignore[arg-type]


def test_wallet_repay_signs_its_deadlines_by_the_chains_time_on_a_devnet_moved_on(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain], borrower: tuple[LocalAccount, str, str]
) -> None:
    """The wallet signed the repayment and its permit until an hour after this computer's time: on a devnet moved on
    by more (``evm_increaseTime``) that had passed by the chain's, and every ``wallet repay`` was refused."""
    chain = devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    wallet, loan_id, key = borrower
    with _clock_moved_on(chain, _relayer(platform, key), 10 * 86_400):
        repaid = repay_loan(wallet, platform.api_url, key, loan_id, "1.00", rpc)
        assert (repaid["status"], Decimal(repaid["interest_paid"]) + Decimal(repaid["principal_paid"])) == (
            "confirmed",
            Decimal(1),
        )
        body = signed_repayment(wallet, repaid["loan"], "max", rpc)
        now = _chain_time(chain)
        assert now < body["deadline"] == body["permit"]["deadline"] <= now + 3_600


def _drop(platform: RunningPlatform, chain: DeployedChain, relayer: ChecksumAddress, body: dict[str, Any]) -> None:
    """Store the relayer's transaction of the signed repayment ``body`` (of 1 USDC) as the transaction manager leaves
    one that was dropped: its nonce taken by another transaction of the relayer, nothing of it mined."""
    permit = body["permit"]
    signed = SignedRepayment(
        body["amount"],
        int(body["nonce"]),
        int(body["deadline"]),
        bytes.fromhex(body["signature"][2:]),
        CollateralPermit.parse(permit["value"], permit["deadline"], permit["v"], permit["r"], permit["s"]),
    )
    loan_ref = int(body["onchain_loan_id"])
    call = repayment_call(
        chain.contract("CreditAggregator"), Repayment(loan_ref, 10**6, signed.nonce, signed.deadline), signed
    )
    dropped = IntentRecord(
        key=repayment_intent_key(chain.chain_id, call),
        chain_id=chain.chain_id,
        sender=relayer,
        to_address=call.to,
        data="0x" + call.data.hex(),
        value=0,
        gas=None,
        payload_hash=call.payload_hash(chain.chain_id, relayer),
        status=DROPPED,
        error="nonce used by another transaction",
    )
    database = Database(platform.database_url or f"sqlite:///{(platform.data_dir / 'creditmesh.db').resolve()}")
    try:
        _, created = asyncio.run(SqlChainStore(database.sessions).create_intent(dropped))
    finally:
        database.engine.dispose()
    assert created


def test_a_repayment_whose_transaction_was_dropped_is_answered_to_be_signed_anew(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain], borrower: tuple[LocalAccount, str, str]
) -> None:
    """Posting a signed repayment again after its transaction was dropped answered 503 "ask again shortly" for ever:
    the stored intent skipped the checks and its wait raised the drop, a chain outage to the API. It is the same
    calldata, dropped for good: the borrower is told to sign a new repayment, which goes through."""
    chain = devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    wallet, loan_id, key = borrower
    relayer = _relayer(platform, key)
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
        body = signed_repayment(wallet, loan, "1.00", rpc)
        _drop(platform, chain, relayer, body | {"onchain_loan_id": loan["onchain_loan_id"]})
        sent_before = chain.w3.eth.get_transaction_count(relayer)

        again = client.post(f"/v1/loans/{loan_id}/repayments", json=body)
        status, kind, _, _ = _refusal(again)
        assert (status, kind) == (422, "repayment-rejected"), again.text
        assert "dropped before it was mined (nothing was paid): sign a new repayment" in again.json()["detail"]
        assert "repay:" not in again.text, "the platform's intent key is not the borrower's business"
        assert chain.w3.eth.get_transaction_count(relayer) == sent_before, "nothing was sent"

        anew = client.post(
            f"/v1/loans/{loan_id}/repayments", json=_resigned(wallet, loan, body, nonce=int(body["nonce"]) + 1)
        )
        assert anew.status_code == 201, anew.text


def test_of_two_repayments_of_everything_posted_at_once_the_second_is_refused_and_never_sent(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    """Both were checked before either was sent, so both were sent: the second reverted LoanNotActive at the relayer's
    cost, and the borrower read "the chain refused the repayment: repay:31337:0x… reverted in block …" — the
    platform's intent key. The second is now checked once the first is recorded."""
    chain = devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    wallet, loan_id, key = new_pool_loan(platform, chain)
    relayer = _relayer(platform, key)
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    first = signed_repayment(wallet, loan, "max", rpc)
    second = _resigned(wallet, loan, first, nonce=int(first["nonce"]) + 1)
    sent_before = chain.w3.eth.get_transaction_count(relayer)
    answers: dict[str, Any] = {}

    def post(name: str, body: dict[str, Any]) -> None:
        with platform.client(key) as client:
            answers[name] = client.post(f"/v1/loans/{loan_id}/repayments", json=body)

    posts = [threading.Thread(target=post, args=item) for item in (("first", first), ("second", second))]
    rpc_call = chain.w3.provider.make_request
    rpc_call("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:  # the first in the node's pool, not mined: the second is posted while it is under way
        for thread in posts:
            thread.start()
        _wait_for_pending(chain, relayer, sent_before + 2, within=2.0)  # a second is never sent now: 2 s spent
    finally:
        rpc_call("evm_setAutomine", [True])  # type: ignore[arg-type]
        rpc_call("evm_mine", [])  # type: ignore[arg-type]
    for thread in posts:
        thread.join()

    closed, refused = sorted(answers.values(), key=lambda response: response.status_code)
    assert (closed.status_code, closed.json().get("closed")) == (201, True), closed.text
    status, kind, _, _ = _refusal(refused)
    assert (status, kind) == (409, "loan-not-repayable"), refused.text
    assert "repay:" not in refused.text, "the platform's intent key is not the borrower's business"
    assert chain.w3.eth.get_transaction_count(relayer) == sent_before + 1, "the second was never sent"
    assert len(_onchain_repayments(chain, int(loan["onchain_loan_id"]))) == 1


def _wait_for_pending(chain: DeployedChain, sender: ChecksumAddress, count: int, within: float) -> None:
    """Until ``sender`` has ``count`` transactions with those in the node's pool, or ``within`` seconds."""
    deadline = time.monotonic() + within
    while chain.w3.eth.get_transaction_count(sender, "pending") < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_relayed_repayment_reverted_by_the_borrowers_own_repayment_mined_first_is_loan_not_repayable(
    platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    """The borrower repaid the loan from their own wallet in the block that mined the relayed repayment, ahead of it
    (a higher tip): the relayed one reverted, and the borrower was told 422 ``repayment-rejected``, "its transaction
    reverted in block N" — sign a new repayment, of a loan already repaid. A mined revert carries no reason; the call
    simulated again says ``LoanNotActive``: 409 ``loan-not-repayable``."""
    chain = devnet_chains[CHAIN]
    wallet, loan_id, key = new_pool_loan(platform, chain)
    relayer = _relayer(platform, key)
    with platform.client(key) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
    relayed = signed_repayment(wallet, loan, "max", chain.devnet.rpc_url)
    rpc_call: Any = chain.w3.provider.make_request
    rpc_call("anvil_setBalance", [wallet.address, hex(10**18)])
    sent_before = chain.w3.eth.get_transaction_count(relayer)
    answers: list[Any] = []

    def post() -> None:
        with platform.client(key) as client:
            answers.append(client.post(f"/v1/loans/{loan_id}/repayments", json=relayed))

    poster = threading.Thread(target=post)
    rpc_call("evm_setAutomine", [False])
    try:  # the relayed repayment waits in the node's pool; the borrower's own goes ahead of it in the same block
        poster.start()
        _wait_for_pending(chain, relayer, sent_before + 1, within=120.0)
        assert chain.w3.eth.get_transaction_count(relayer, "pending") == sent_before + 1, "the relayed one was sent"
        own: list[Any] = [
            chain.contract("USDC").functions.approve(loan["contract"], 2**256 - 1),
            chain.contract("CreditAggregator").functions.repay(int(loan["onchain_loan_id"]), 2**256 - 1),
        ]
        for call in own:
            nonce = chain.w3.eth.get_transaction_count(wallet.address, "pending")
            transaction = call.build_transaction(
                {"from": wallet.address, "nonce": nonce, "gas": 500_000, "maxFeePerGas": 10**12}
                | {"maxPriorityFeePerGas": 10**11}  # a higher tip than the relayer's: mined first
            )
            chain.w3.eth.send_raw_transaction(wallet.sign_transaction(dict(transaction)).raw_transaction)
    finally:
        rpc_call("evm_setAutomine", [True])
        rpc_call("evm_mine", [])
    poster.join()

    (answer,) = answers
    status, kind, _, _ = _refusal(answer)
    assert (status, kind) == (409, "loan-not-repayable"), answer.text
    assert "LoanNotActive" in answer.json()["detail"], answer.text
    assert "repay:" not in answer.text, "the platform's intent key is not the borrower's business"
    repaid = _onchain_repayments(chain, int(loan["onchain_loan_id"]))
    assert [event["payer"] for event in repaid] == [wallet.address], "the borrower's own repayment closed it"
