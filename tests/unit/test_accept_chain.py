"""The accept's chain side without a node: a receipt's logs as the node sent them (the relay's watcher keeps them)
decode to the same events as web3's formatted receipt did, the borrower's code is asked for only when the
acceptance is not signed by the borrower's key, and an open is estimated once, then simulated by one ``eth_call``."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, cast

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3._utils.method_formatters import log_entry_formatter

from aggregator._accept_chain import _log_entry, open_loan_call, signed_by_borrower, simulate_open, verify_acceptance
from aggregator.accept_saga import QuoteView
from aggregator.errors import ChainRejected, InvalidAcceptance
from aggregator.offers import acceptance_document
from aggregator.permit import CollateralPermit
from aggregator.platform import ChainRuntime
from api.wallet import sign_acceptance
from chain.artifacts import load_artifact
from chain.events import EventDecoder, WatchedContract
from chain.transactions import Call
from contracts.typed_data import OFFER_FIELDS, RISK_ATTESTATION_FIELDS
from tests.support.offers import offer_fields

pytestmark = pytest.mark.unit

AGGREGATOR = to_checksum_address("0x" + "a1" * 20)
LOAN_OPENED = next(
    item
    for item in load_artifact("CreditAggregator").abi
    if item.get("type") == "event" and item["name"] == "LoanOpened"
)


def _random_value(kind: str, rng: random.Random) -> Any:
    if kind == "address":
        return to_checksum_address(rng.randbytes(20))
    if kind == "bytes32":
        return rng.randbytes(32)
    bits = int(kind.removeprefix("uint"))
    return rng.randrange(2**bits)


def _stored(fields: list[dict[str, str]], rng: random.Random) -> dict[str, Any]:
    """A struct as a quote row stores it (JSON: addresses lower-case, bytes32 as hex, big integers as strings)."""
    values = {field["name"]: _random_value(field["type"], rng) for field in fields}
    return {
        name: "0x" + value.hex()
        if isinstance(value, bytes)
        else value.lower()
        if isinstance(value, str)
        else str(value)
        for name, value in values.items()
    }


def _raw_log(rng: random.Random) -> dict[str, Any]:
    """A LoanOpened log with random arguments, as eth_getBlockReceipts answers it (hex strings)."""
    inputs = LOAN_OPENED["inputs"]
    values = {item["name"]: _random_value(item["type"], rng) for item in inputs}
    topics = [event_abi_to_log_topic(cast(ABIEvent, LOAN_OPENED))]
    topics += [encode([item["type"]], [values[item["name"]]]) for item in inputs if item["indexed"]]
    unindexed = [item for item in inputs if not item["indexed"]]
    data = encode([item["type"] for item in unindexed], [values[item["name"]] for item in unindexed])
    return {
        "address": AGGREGATOR.lower(),
        "topics": ["0x" + topic.hex() for topic in topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(rng.randrange(1, 10**7)),
        "blockHash": "0x" + rng.randbytes(32).hex(),
        "transactionHash": "0x" + rng.randbytes(32).hex(),
        "transactionIndex": hex(rng.randrange(100)),
        "logIndex": hex(rng.randrange(1000)),
        "removed": False,
    }


def test_a_log_as_the_node_sent_it_decodes_as_the_formatted_receipt_did() -> None:
    decoder = EventDecoder(Web3().codec)
    decoder.add(WatchedContract("CreditAggregator", AGGREGATOR, "CreditAggregator"))
    rng = random.Random(18)
    for _ in range(20):
        raw = _raw_log(rng)
        from_raw = decoder.decode(31337, _log_entry(raw))
        formatted = decoder.decode(31337, log_entry_formatter(raw))
        assert from_raw is not None
        assert from_raw == formatted
        assert from_raw.event == "LoanOpened"
        assert decoder.decode(31337, _log_entry(log_entry_formatter(raw))) == from_raw  # formatted passes through


def test_the_open_loan_calldata_is_what_web3s_contract_encodes() -> None:
    aggregator = Web3().eth.contract(address=AGGREGATOR, abi=load_artifact("CreditAggregator").abi)
    chain = cast(ChainRuntime, SimpleNamespace(aggregator=lambda: aggregator))
    rng = random.Random(1807)
    for n in range(20):
        quote = cast(
            QuoteView,
            SimpleNamespace(
                offer=_stored(OFFER_FIELDS, rng),
                attestation=_stored(RISK_ATTESTATION_FIELDS, rng),
                offer_signature="0x" + rng.randbytes(65).hex(),
                attestation_signature="0x" + rng.randbytes(65 + n).hex(),
            ),
        )
        signature = rng.randbytes(65 + n % 3)
        permit = CollateralPermit(
            rng.randrange(2**256), rng.randrange(2**64), 27 + n % 2, rng.randbytes(32), rng.randbytes(32)
        )
        plain, with_permit = (
            open_loan_call(chain, quote, signature, None),
            open_loan_call(chain, quote, signature, permit),
        )
        offer = tuple(_field_value(f["type"], quote.offer[f["name"]]) for f in OFFER_FIELDS)
        attestation = tuple(_field_value(f["type"], quote.attestation[f["name"]]) for f in RISK_ATTESTATION_FIELDS)
        args = [
            (offer, offer[12]),
            bytes.fromhex(quote.offer_signature[2:]),
            signature,
            attestation,
            bytes.fromhex(quote.attestation_signature[2:]),
        ]
        assert plain.to == with_permit.to == AGGREGATOR
        assert "0x" + plain.data.hex() == aggregator.encode_abi("openLoan", args=args)
        assert "0x" + with_permit.data.hex() == aggregator.encode_abi(
            "openLoanWithPermit", args=[*args, permit.as_abi_tuple()]
        )


def _field_value(kind: str, stored: Any) -> Any:
    if kind == "address":
        return to_checksum_address(stored)
    return bytes.fromhex(stored[2:]) if kind == "bytes32" else int(stored)


class CodeCounter:
    """The chain's ``eth_getCode``, counted: ``code`` for every address."""

    def __init__(self, code: bytes = b"") -> None:
        self.code, self.asked = code, 0
        self.w3 = SimpleNamespace(eth=SimpleNamespace(get_code=self._get_code))

    async def _get_code(self, address: str) -> bytes:
        self.asked += 1
        return self.code


def _quote(borrower: str) -> QuoteView:
    offer = offer_fields(borrower)
    return cast(
        QuoteView,
        SimpleNamespace(offer=offer, chain_id=31337, contract="0x" + "66" * 20, expires_at=None),
    )


async def test_the_borrowers_code_is_asked_for_only_when_the_signature_is_not_its_keys() -> None:
    borrower, stranger = Account.create(), Account.create()
    quote = _quote(borrower.address)
    document = acceptance_document(quote)
    own = bytes.fromhex(sign_acceptance(borrower, document).removeprefix("0x"))
    chain = CodeCounter()
    await verify_acceptance(cast(ChainRuntime, chain), quote, own)
    assert chain.asked == 0
    forged = bytes.fromhex(sign_acceptance(stranger, document).removeprefix("0x"))
    with pytest.raises(InvalidAcceptance, match="not by the borrower"):
        await verify_acceptance(cast(ChainRuntime, chain), quote, forged)
    assert chain.asked == 1
    wallet = CodeCounter(code=b"\x60\x80")  # a contract wallet: its signature is left to the contract
    await verify_acceptance(cast(ChainRuntime, wallet), quote, forged)
    await verify_acceptance(cast(ChainRuntime, wallet), quote, b"\x01" * 65)
    assert wallet.asked == 2


class OpenNode:
    """The relayer's node for ``simulate_open``: ``eth_estimateGas`` answers ``estimate`` (an error when None), an
    ``eth_call`` fails when ``refuse_calls`` or its gas limit is below ``needs``; every request is recorded."""

    def __init__(self, estimate: int | None, needs: int = 0) -> None:
        self.estimate, self.needs, self.refuse_calls = estimate, needs, False
        self.requests: list[tuple[str, list[Any]]] = []
        provider = SimpleNamespace(make_request=self._request)
        self.client = SimpleNamespace(provider=provider)
        self.chain_id, self.relayer = 31337, "0x" + "77" * 20
        self.transactions = SimpleNamespace(settings=SimpleNamespace(gas_limit=lambda gas: gas + gas // 5))
        self.open_gas: dict[tuple[str, bytes, str], int] = {}

    async def _request(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.requests.append((str(method), params))
        if method == "eth_blockNumber":
            return {"result": "0x10"}
        if method == "eth_estimateGas":
            if self.estimate is None:
                return {"error": {"code": 3, "message": "execution reverted"}}
            return {"result": hex(self.estimate)}
        gas = int(params[0].get("gas", "0x0"), 16) if method == "eth_call" else 0
        if self.refuse_calls or self.estimate is None or (gas and gas < self.needs):
            return {"error": {"code": 3, "message": "execution reverted: OfferAlreadyUsed"}}
        return {"result": "0x"}

    def methods(self) -> list[str]:
        methods = [method for method, _ in self.requests]
        self.requests.clear()
        return methods


async def test_an_open_is_estimated_once_then_simulated_by_one_call_with_the_learned_gas_limit() -> None:
    node = OpenNode(estimate=500_000, needs=500_000)
    chain = cast(ChainRuntime, node)
    call = Call(to=AGGREGATOR, data=b"\x01\x02\x03\x04" + b"\x00" * 64)
    first = await simulate_open(chain, call, "pool")
    assert (first.gas, node.methods()) == (600_000, ["eth_estimateGas"])
    again = await simulate_open(chain, call, "pool")
    assert (again.gas, node.methods()) == (600_000, ["eth_call"])
    assert await simulate_open(chain, call, "traditional") == first  # another kind is estimated on its own
    assert node.methods() == ["eth_estimateGas"]
    # an open that needs more than the limit learned: estimated again, and the higher limit kept
    node.estimate = node.needs = 700_000
    assert (await simulate_open(chain, call, "pool")).gas == 840_000
    assert node.methods() == ["eth_call", "eth_estimateGas"]
    assert (await simulate_open(chain, call, "pool")).gas == 840_000
    assert node.methods() == ["eth_call"]


async def test_an_open_the_chain_refuses_is_still_a_named_rejection_after_the_limit_is_known() -> None:
    node = OpenNode(estimate=500_000)
    chain = cast(ChainRuntime, node)
    call = Call(to=AGGREGATOR, data=b"\x01\x02\x03\x04")
    await simulate_open(chain, call, "pool")
    node.estimate = None  # the offer is spent: every simulation reverts
    node.methods()
    with pytest.raises(ChainRejected, match="OfferAlreadyUsed"):
        await simulate_open(chain, call, "pool")
    # the cheap call, then the estimate and the pinned simulation that confirms the revert
    assert node.methods() == ["eth_call", "eth_estimateGas", "eth_blockNumber", "eth_call", "eth_blockNumber"]
    # a call refused while the estimate passes (anvil's head race): the estimate decides, the open goes on
    node.estimate, node.refuse_calls = 500_000, True
    assert (await simulate_open(chain, call, "pool")).gas == 600_000


def test_an_acceptance_is_taken_as_the_borrowers_without_the_chain_only_when_its_key_signed_it() -> None:
    borrower, stranger = Account.create(), Account.create()
    quote = _quote(borrower.address)
    document = acceptance_document(quote)
    assert signed_by_borrower(quote, bytes.fromhex(sign_acceptance(borrower, document).removeprefix("0x")))
    assert not signed_by_borrower(quote, bytes.fromhex(sign_acceptance(stranger, document).removeprefix("0x")))
    assert not signed_by_borrower(quote, b"\x01" * 65)  # malformed: left to verify_acceptance and the chain


async def test_a_contract_wallets_signature_no_key_made_is_left_to_the_chain_never_a_500() -> None:
    """A Safe of two owners signs with 130 bytes, and its approved-hash form is 65 bytes with r and s zero: eth-account
    raises its own errors for both (not ValueError), which escaped as a bare 500. Such a signature is no key's: not
    the borrower's key, left to the contract (ERC-1271) when the borrower's address holds code, refused when not."""
    borrower = Account.create()
    quote = _quote(borrower.address)
    own = bytes.fromhex(sign_acceptance(borrower, acceptance_document(quote)).removeprefix("0x"))
    two_owners, approved_hash = own + own, bytes(64) + b"\x01"
    for signature in (two_owners, approved_hash):
        assert not signed_by_borrower(quote, signature)
        wallet = CodeCounter(code=b"\x60\x80")
        await verify_acceptance(cast(ChainRuntime, wallet), quote, signature)
        assert wallet.asked == 1
        with pytest.raises(InvalidAcceptance, match="recovers no signer"):
            await verify_acceptance(cast(ChainRuntime, CodeCounter()), quote, signature)
