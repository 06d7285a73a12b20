"""A credit request written as JSON directly (``api.render.credit_request_json``, what ``POST`` and ``GET
/v1/credit-requests…`` answer) is, byte for byte, what FastAPI writes for the route's ``response_model`` from
``credit_request_out``'s model: on real quoted requests (the quoting service's signed quotes) varied at random —
installments, non-ASCII and escapes in the texts, large integers and nesting in the risk document, declines without
quotes, a loan id."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from aggregator.assets import Asset, AssetRegistry
from aggregator.quote_store import InMemoryQuotingStore, OutcomeRecord, QuotedRequest, QuoteRecord
from api.render import credit_request_json, credit_request_out
from api.schemas import CreditRequestOut
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import AddressList, ListVersion, NameList
from compliance.sanctions.screening import SanctionsScreen
from tests.support.quoting import CHAINS, SPEC, _address, borrower_file, quoting_service

pytestmark = pytest.mark.unit

_TOKENS = {name: to_checksum_address(_address(0xC0 + i)) for i, name in enumerate(CHAINS)}
ASSETS = AssetRegistry([Asset("USDC", 6, Decimal(1), _TOKENS), Asset("WETH", 18, Decimal(3000), dict(_TOKENS))])
_TEXT = ["", "plain", "ünïcødé", 'quote " and \\ backslash', "tab\tnew\nline", "\u2028\u2029", "😀 emoji", "\x7f\x01"]


@pytest.fixture(scope="module")
def quoted() -> QuotedRequest:
    version = ListVersion("t", datetime(2026, 11, 1, tzinfo=UTC), "t.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    compliance = ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))
    return asyncio.run(quoting_service(InMemoryQuotingStore(), compliance).request_credit(borrower_file(), SPEC))


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        return rng.choice(_TEXT)
    if kind == 1:
        return rng.choice([0, -1, 2**63 - 1, 2**64 + 7, 2**255, rng.randrange(10**9)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([0.5, 1e-7, 12345.678])
    if kind == 4:
        return f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_TEXT) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}


def _installments(rng: random.Random, quote: QuoteRecord) -> QuoteRecord:
    decimals = int(quote.disclosure["assetDecimals"])
    start = date(2026, 12, 1)
    payments = [
        {
            "number": n,
            "due": (start + timedelta(days=30 * (n - 1))).isoformat(),
            "amount": f"{rng.randrange(10**4)}.{rng.randrange(10**decimals):0{decimals}d}",
            "principal": f"{rng.randrange(10**4)}.{rng.randrange(10**decimals):0{decimals}d}",
            "interest": f"0.{rng.randrange(10**decimals):0{decimals}d}",
        }
        for n in rng.sample(range(1, 13), rng.randrange(1, 12))
    ]
    disclosure = quote.disclosure | {"payments": payments, "repayment": "equal-installments/monthly"}
    return replace(quote, disclosure=disclosure)


def _varied(rng: random.Random, quoted: QuotedRequest) -> tuple[QuotedRequest, str | None]:
    quotes = [q if rng.random() < 0.5 else _installments(rng, q) for q in quoted.quotes]
    quotes = [replace(q, rank=rank, status=rng.choice(["offered", "superseded"])) for rank, q in enumerate(quotes)]
    rng.shuffle(quotes)
    outcomes = [
        OutcomeRecord(rng.choice(_TEXT) + "p", rng.choice(["offered", "declined", "timeout"]), rng.choice(_TEXT), n)
        for n in rng.sample(range(0, 5000), rng.randrange(0, 6))
    ]
    request = replace(quoted.request, risk={"score": rng.randrange(1000), "more": _value(rng, 0)})
    if rng.random() < 0.2:
        quotes, request = [], replace(request, status="declined")
    loan_id = rng.choice([None, "loan-" + str(rng.randrange(10**6))])
    return QuotedRequest(request, outcomes, quotes), loan_id


def test_the_json_is_the_bytes_fastapi_writes_for_the_model(quoted: QuotedRequest) -> None:
    rng = random.Random(18)
    cases = [_varied(rng, quoted) for _ in range(30)]
    app = FastAPI()

    @app.get("/model/{n}", response_model=CreditRequestOut)
    def model(n: int) -> CreditRequestOut:
        return credit_request_out(cases[n][0], ASSETS, cases[n][1])

    @app.get("/json/{n}", response_model=CreditRequestOut)
    def direct(n: int) -> Response:
        return Response(credit_request_json(cases[n][0], ASSETS, cases[n][1]), media_type="application/json")

    with TestClient(app) as client:
        for n in range(len(cases)):
            by_model, by_json = client.get(f"/model/{n}"), client.get(f"/json/{n}")
            assert by_model.status_code == 200
            assert by_json.content == by_model.content
            assert by_json.headers == by_model.headers
    assert sum(bool(case.quotes) for case, _ in cases) > 15
    assert any(len(q.schedule) > 1 for case, _ in cases for q in credit_request_out(case, ASSETS).quotes)
    assert any(loan is not None for _, loan in cases)
