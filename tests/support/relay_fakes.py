"""In-process fakes of what the relayed-payment services (``aggregator.repaying``, ``aggregator.offchain_payments``)
use of a chain, for unit tests of their logic: a sender that keeps intents by key (as the transaction manager does:
the same intent twice is one transaction), the contract reads they make (``amountOwed``, the debt asset's
allowance, the latest block's time), and a receipt recorder answering the events a test gives it; and the off-chain
payment service built on them and the in-memory stores. Calldata is encoded with the real ABIs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from eth_utils.address import to_checksum_address
from web3 import Web3

from aggregator.assets import Asset, AssetRegistry
from aggregator.loans import InMemoryLoanStore, LoanRecord
from aggregator.offchain_payments import OffchainPayments
from aggregator.payment_records import InMemoryPaymentStore
from aggregator.platform import ChainRuntime
from chain.artifacts import load_artifact
from chain.errors import ChainError, ConfirmationTimeout, TransactionDropped, TransactionReverted
from chain.events import ChainEvent
from chain.transactions import Call
from contracts.typed_data import Domain
from store.chain import CONFIRMED, DROPPED, FAILED, OPEN_STATUSES, REVERTED, SENT
from store.leases import LeaseStore

CHAIN_NAME, CHAIN_ID = "ethereum-local", 31337
AGGREGATOR = to_checksum_address("0x" + "a0" * 20)
RELAYER = to_checksum_address("0x" + "e0" * 20)
TOKEN = to_checksum_address("0x" + "c0" * 20)
ZERO = "0x" + "00" * 20
USDC = 10**6
ASSETS = AssetRegistry([Asset("USDC", 6, Decimal(1), {CHAIN_NAME: TOKEN})])
#: an active 100 USDC loan on the fake chain, in the debt asset TOKEN; tests set whose it is and its on-chain id
LOAN = LoanRecord(
    "l1",
    CHAIN_NAME,
    CHAIN_ID,
    AGGREGATOR,
    "active",
    "USDC",
    100 * USDC,
    "0x" + "ab" * 32,
    datetime(2026, 11, 26, tzinfo=UTC),
    asset_address=TOKEN,
)
#: LOAN as sim-bank's, its loan 9 on-chain: the loan a lender reports payments of
LENDER_LOAN = replace(LOAN, provider_id="sim-bank", onchain_loan_id=9)


@dataclass
class Sent:
    tx_hash: str
    block_number: int = 0
    status: str = "confirmed"
    error: str | None = None
    data: str = "0x"  # the call's, as the intent keeps it
    key: str = ""  # the intent's
    to_address: str | None = None  # the call's
    sender: str = RELAYER  # the account sending it


@dataclass
class FakeSender:
    """A transaction manager: ``submit`` sends an intent once (or raises ``refuse``, keeping the intent failed, as a
    refused simulation does); ``wait`` raises ``outcome`` when set (a timeout, a revert), else answers the mined
    receipt. An intent a wait timed out on stays open (sent) until a test settles it; a revert or a drop ends it."""

    sent: dict[str, tuple[Call, Sent]] = field(default_factory=dict)
    submitted: list[tuple[str, Call]] = field(default_factory=list)  # every submit's (key, call), repeats too
    outcome: ChainError | None = None
    refuse: ChainError | None = None  # at submit: refused by simulation, kept as a failed intent, nothing sent
    block: int = 7

    @property
    def store(self) -> FakeSender:
        return self

    async def get_intent(self, key: str) -> Sent | None:
        return self.sent[key][1] if key in self.sent else None

    async def open_keyed(self, prefix: str) -> list[Sent]:
        """The open intents keyed ``prefix…``, as ``SqlChainStore.open_keyed`` reads them."""
        return [sent for key, (_, sent) in self.sent.items() if key.startswith(prefix) and sent.status in OPEN_STATUSES]

    async def attempts(self, first: str) -> list[tuple[int, Sent]]:
        """Every intent kept of ``first``'s attempts by number, as ``SqlChainStore.attempts`` reads them."""
        numbered = [(1, sent) for key, (_, sent) in self.sent.items() if key == first]
        for key, (_, sent) in self.sent.items():
            suffix = key.removeprefix(f"{first}:")
            if key.startswith(f"{first}:") and suffix.isdigit():
                numbered.append((int(suffix), sent))
        return sorted(numbered, key=lambda pair: pair[0])

    async def submit(self, key: str, call: Call) -> Sent:
        self.submitted.append((key, call))
        data = "0x" + call.data.hex()
        if self.refuse is not None and key not in self.sent:
            self.sent[key] = (
                call,
                Sent("", status=FAILED, error=str(self.refuse), data=data, key=key, to_address=call.to),
            )
            raise self.refuse
        if key not in self.sent:
            self.sent[key] = (call, Sent("0x" + f"{len(self.sent) + 1:064x}", data=data, key=key, to_address=call.to))
        return self.sent[key][1]

    async def wait(self, key: str, within: float) -> Sent:
        if self.outcome is not None:
            sent = self.sent[key][1]
            if isinstance(self.outcome, ConfirmationTimeout):
                sent.status = SENT
            elif isinstance(self.outcome, TransactionReverted | TransactionDropped):
                sent.status = REVERTED if isinstance(self.outcome, TransactionReverted) else DROPPED
            raise self.outcome
        mined = self.sent[key][1]
        mined.block_number, mined.status = self.block, CONFIRMED
        return mined


class _Reads:
    """``contract.functions.<name>(*args).call()`` answering from a dictionary of functions."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers

    def __getattr__(self, name: str) -> Any:
        answer = self._answers[name]

        def bound(*args: Any) -> Any:
            class _Call:
                async def call(self, *_: Any, **__: Any) -> Any:
                    return answer(*args)

            return _Call()

        return bound


class FakeContract:
    """Encodes with the real ABI (``Call.function``); reads answer from ``answers``."""

    def __init__(self, artifact: str, address: str, answers: dict[str, Any]) -> None:
        self._encoder = Web3().eth.contract(address=to_checksum_address(address), abi=load_artifact(artifact).abi)
        self.address = self._encoder.address
        self.functions = _Reads(answers)

    def encode_abi(self, name: str, args: list[Any]) -> Any:
        return self._encoder.encode_abi(name, args=args)


@dataclass
class FakeChain:
    """What the services read of a ChainRuntime: name, id, the CreditAggregator, the debt asset, the senders."""

    owed: tuple[int, int] = (0, 0)  # amountOwed: principal, interest
    #: getLoan's rate and last accrual: interest runs on from ``owed`` at ``rate_bps`` after ``accrued_at``
    rate_bps: int = 0
    accrued_at: int = 0
    allowance: int = 0
    now: int = 1_900_000_000  # the latest block's timestamp
    transactions: FakeSender = field(default_factory=FakeSender)
    operator: FakeSender = field(default_factory=FakeSender)
    name: str = CHAIN_NAME
    chain_id: int = CHAIN_ID
    address: str = AGGREGATOR  # the CreditAggregator the chain's deployment record names (a test redeploys it)
    relayer: str = RELAYER

    @property
    def client(self) -> Any:
        """The node a mined revert's call is simulated again on (``repaying._why_reverted``): it passes at the head
        now, so the revert's own message is what the borrower is told."""

        class _Node:
            async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
                return {"jsonrpc": "2.0", "id": 1, "result": "0x7" if method == "eth_blockNumber" else "0x"}

        class _Client:
            provider = _Node()

        return _Client()

    def aggregator(self) -> FakeContract:
        principal, interest = self.owed
        loan = (ZERO, ZERO, ZERO, self.rate_bps, 0, self.accrued_at, 1, principal, interest, ZERO, 0, 0)  # Active
        reads = {"amountOwed": lambda _loan: self.owed, "getLoan": lambda _loan: loan}
        return FakeContract("CreditAggregator", self.address, reads)

    @property
    def aggregator_domain(self) -> Domain:
        return Domain(self.chain_id, to_checksum_address(self.address))

    @property
    def w3(self) -> Any:
        chain = self

        class _Eth:
            def contract(self, address: str, abi: Any) -> FakeContract:
                return FakeContract("MockERC20", address, {"allowance": lambda _owner, _spender: chain.allowance})

            async def get_code(self, address: str) -> bytes:
                return b""  # an externally owned account

            async def get_block(self, block: str) -> dict[str, int]:
                return {"timestamp": chain.now}

        class _W3:
            eth = _Eth()

        return _W3()

    def runtime(self) -> ChainRuntime:
        return cast(ChainRuntime, self)


@dataclass
class FakeReceipts:
    """The events each transaction's receipt holds, as the ledger would be given them."""

    events: dict[str, list[ChainEvent]] = field(default_factory=dict)
    recorded: list[str] = field(default_factory=list)

    async def record(self, chain: ChainRuntime, tx_hash: str) -> list[ChainEvent]:
        self.recorded.append(tx_hash)
        return self.events.get(tx_hash, [])


def event(name: str, tx_hash: str, **args: Any) -> ChainEvent:
    return ChainEvent(CHAIN_ID, "CreditAggregator", AGGREGATOR, name, args, 7, "0x" + "bb" * 32, tx_hash, 0)


def offchain_payments(
    *loans: tuple[str, LoanRecord],
    disclosures: dict[str, dict[str, Any]] | None = None,
    chain: FakeChain | None = None,
    loan_store: InMemoryLoanStore | None = None,
    leases: LeaseStore | None = None,
) -> tuple[OffchainPayments, FakeChain, InMemoryPaymentStore, FakeReceipts]:
    """The off-chain payment service on in-memory stores and ``chain`` (a new FakeChain unless given): each (offer
    reference, loan) its lender's in ``loan_store`` (a new one unless given; LENDER_LOAN as offer-1 when no loan
    is), ``disclosures`` by quote id, a loan's claims taken in ``leases`` when given. The service, the chain, the
    payment store and the receipt recorder."""
    loan_store = InMemoryLoanStore() if loan_store is None else loan_store
    loan_store.disclosures.update(disclosures or {})
    for offer_ref, loan in loans or (("offer-1", LENDER_LOAN),):
        loan_store.loans[loan.id] = loan
        loan_store.provider_refs[(loan.provider_id or "", offer_ref)] = loan.id
    chain = FakeChain() if chain is None else chain
    payments, receipts = InMemoryPaymentStore(), FakeReceipts()
    runtimes = {CHAIN_NAME: chain.runtime()}
    service = OffchainPayments(loan_store, payments, runtimes, ASSETS, receipts, wait_seconds=1, leases=leases)
    return service, chain, payments, receipts
