"""A credit request's quotes as the API writes them (``credit_request_json`` for ``POST``/``GET
/v1/credit-requests``, ``quote_out`` for ``GET /v1/quotes/{id}``), read as JavaScript reads JSON: no integer past 2^53
(each uint256 of the offer and the acceptance a decimal string), and the acceptance a wallet signs from the parsed
document is the one the platform verifies. Before, 1.234567890123456789 WETH of collateral went out as the number
1234567890123456789, ``JSON.parse`` read 1234567890123456768, and the wallet signed that: the accept was refused."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address

from aggregator.assets import Asset, AssetRegistry
from aggregator.offers import acceptance_document, offer_document
from aggregator.quote_store import InMemoryQuotingStore, QuotedRequest
from api.render import credit_request_json, quote_out
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import AddressList, ListVersion, NameList
from compliance.sanctions.screening import SanctionsScreen
from contracts.typed_data import recover, sign
from tests.support.javascript_json import javascript_loads, unsafe_integers
from tests.support.quoting import CHAINS, SPEC, _address, borrower_file, quoting_service

pytestmark = pytest.mark.unit

_TOKENS = {name: to_checksum_address(_address(0xC0 + i)) for i, name in enumerate(CHAINS)}
ASSETS = AssetRegistry([Asset("USDC", 6, Decimal(1), _TOKENS), Asset("WETH", 18, Decimal(3000), dict(_TOKENS))])
COLLATERAL = "1.234567890123456789"  # 1234567890123456789 base units: no double holds it
WALLET = Account.from_key(bytes(range(1, 33)))


@pytest.fixture(scope="module")
def quoted() -> QuotedRequest:
    version = ListVersion("t", datetime(2026, 11, 1, tzinfo=UTC), "t.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    compliance = ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))
    spec = replace(SPEC, collateral_amount=COLLATERAL)
    quoted = asyncio.run(quoting_service(InMemoryQuotingStore(), compliance).request_credit(borrower_file(), spec))
    assert len(quoted.quotes) >= 2
    return quoted


def _answers(quoted: QuotedRequest) -> list[bytes]:
    """The credit request as POST answers it, and each quote as GET /v1/quotes/{id} does."""
    single = [quote_out(q, quoted.request, ASSETS).model_dump_json().encode() for q in quoted.quotes]
    return [credit_request_json(quoted, ASSETS), *single]


def test_no_integer_of_a_quote_is_past_what_javascript_reads_exactly(quoted: QuotedRequest) -> None:
    for answer in _answers(quoted):
        assert unsafe_integers(answer) == []
    request = javascript_loads(credit_request_json(quoted, ASSETS))
    for quote in request["quotes"]:
        offer = quote["offer"]
        assert offer["collateralAmount"] == "1234567890123456789"
        assert int(offer["principal"]) == 1_500 * 10**6
        assert quote["acceptance_typed_data"]["message"] == {"offer": offer, "deadline": offer["expiry"]}


def test_the_acceptance_signed_from_the_parsed_quote_is_the_one_the_platform_verifies(quoted: QuotedRequest) -> None:
    by_id = {q.id: q for q in quoted.quotes}
    for answer in _answers(quoted):
        parsed = javascript_loads(answer)
        for quote in parsed.get("quotes", [parsed]):
            row = by_id[quote["id"]]
            signature = sign(quote["acceptance_typed_data"], WALLET.key)  # eth-account, from the decimal strings
            assert recover(acceptance_document(row), signature) == WALLET.address
            signable = encode_typed_data(full_message=quote["acceptance_typed_data"])
            assert signable == encode_typed_data(full_message=acceptance_document(row))


def test_the_shown_offer_is_the_signed_one(quoted: QuotedRequest) -> None:
    """A client rebuilds the quote signer's ``Offer`` document from the quote's ``offer`` and its domain alone."""
    for quote in javascript_loads(credit_request_json(quoted, ASSETS))["quotes"]:
        row = next(q for q in quoted.quotes if q.id == quote["id"])
        shown: dict[str, Any] = offer_document(row) | {"message": quote["offer"]}
        signature = bytes.fromhex(quote["offer_signature"].removeprefix("0x"))
        assert recover(shown, signature) == recover(offer_document(row), signature)
        assert shown["domain"] == quote["acceptance_typed_data"]["domain"]
