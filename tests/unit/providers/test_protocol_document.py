"""docs/provider-quote-protocol.yaml and the code agree: the examples parse with the adapter's and the webhook
receiver's own models, and the schemas require what the models require."""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from providers.http_lender import (
    _reserve_payload,
    _WireAcceptResponse,
    _WireOffer,
    _WirePayment,
    _WirePhaseResponse,
    _WireQuoteResponse,
    _WireSchedule,
)
from providers.models import InstallmentSchedule, ProviderKind, ProviderOffer, RepaymentShape, ScheduledPayment
from providers.sim.lender import QuoteBody
from providers.webhooks import WebhookEvent

pytestmark = pytest.mark.unit

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "provider-quote-protocol.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = importlib.import_module("yaml").safe_load(DOCUMENT.read_text())
    return loaded


def test_it_is_openapi_3_1_with_every_operation_and_the_webhook(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["version"] == "1"
    assert set(spec["paths"]) == {
        "/v1/quotes",
        "/v1/offers/{offer_ref}/accept",
        "/v1/offers/{offer_ref}/reserve",
        "/v1/offers/{offer_ref}/fund",
        "/v1/offers/{offer_ref}/cancel",
        "/v1/offers/{offer_ref}",
        "/v1/health",
    }
    assert "204" in spec["paths"]["/v1/quotes"]["post"]["responses"]
    assert set(spec["webhooks"]) == {"offerEvent", "loanEvent"}


def test_examples_parse_with_the_models_that_read_them(spec: dict[str, Any]) -> None:
    quote = spec["paths"]["/v1/quotes"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    assert _WireQuoteResponse.model_validate(quote).offers[0].rate_bps == 805
    accept = spec["paths"]["/v1/offers/{offer_ref}/accept"]["post"]["responses"]["200"]
    assert _WireAcceptResponse.model_validate(accept["content"]["application/json"]["example"]).status == "funded"
    for phase, status in (("reserve", "reserved"), ("fund", "funded"), ("cancel", "cancelled")):
        answer = spec["paths"][f"/v1/offers/{{offer_ref}}/{phase}"]["post"]["responses"]["200"]
        assert _WirePhaseResponse.model_validate(answer["content"]["application/json"]["example"]).status == status
    webhooks = spec["webhooks"]["offerEvent"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert WebhookEvent.model_validate(webhooks["funded"]["value"]).event_id == "evt-0001"
    payment = WebhookEvent.model_validate(webhooks["payment"]["value"])
    assert (payment.type, payment.payment_ref, payment.amount) == ("payment.received", "pay-0001", "300.00")
    without_reference = {k: v for k, v in webhooks["payment"]["value"].items() if k != "payment_ref"}
    with pytest.raises(ValueError, match=r"payment\.received needs payment_ref and amount"):
        WebhookEvent.model_validate(without_reference)


@pytest.mark.parametrize(
    ("schema", "model"),
    [("Offer", _WireOffer), ("QuoteResponse", _WireQuoteResponse), ("WebhookEvent", WebhookEvent)],
)
def test_schemas_require_what_the_models_require(spec: dict[str, Any], schema: str, model: Any) -> None:
    documented = spec["components"]["schemas"][schema]
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(documented["required"]) == required
    assert set(documented["properties"]) == set(model.model_fields)


def test_the_quote_request_schema_covers_what_the_simulator_reads(spec: dict[str, Any]) -> None:
    documented = spec["components"]["schemas"]["QuoteRequest"]["properties"]
    assert set(QuoteBody.model_fields) <= set(documented)


def test_the_reserve_request_schema_is_what_the_adapter_sends(spec: dict[str, Any]) -> None:
    offer = ProviderOffer(
        provider_id="sim-bank",
        kind=ProviderKind.TRADITIONAL,
        asset="USDC",
        principal=1_000 * 10**6,
        rate_bps=900,
        origination_fee=10 * 10**6,
        term_days=90,
        repayment=RepaymentShape.INSTALLMENTS,
        installments=3,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        provider_ref="sim-bank-1",
    )
    documented = spec["components"]["schemas"]["ReserveRequest"]
    sent = _reserve_payload(offer) | {"protocol_version": "1", "operation": "reserve", "nonce": "n", "offer_ref": "x"}
    assert set(sent) == set(documented["required"]) == set(documented["properties"]) - {"schedule"}
    assert (sent["repayment"], sent["installments"]) == ("installments", 3), "the lender's schedule is carried"
    payments = (ScheduledPayment(1, date(2030, 2, 1), 338_340_000), ScheduledPayment(2, date(2030, 3, 1), 1))
    scheduled = _reserve_payload(replace(offer, schedule=InstallmentSchedule("quarterly", payments=payments)))
    assert set(scheduled) - set(sent) == {"schedule"}
    assert set(scheduled["schedule"]) == set(spec["components"]["schemas"]["Schedule"]["properties"])
    assert scheduled["schedule"]["payments"][0] == {"number": 1, "due": "2030-02-01", "amount": "338340000"}
    assert InstallmentSchedule.from_document(scheduled["schedule"]).payments == payments, "read back as sent"


def test_the_schedule_schema_is_what_the_adapter_reads(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["Schedule"]["properties"]) == set(_WireSchedule.model_fields)
    assert set(schemas["SchedulePayment"]["required"]) == set(_WirePayment.model_fields)
    example = spec["paths"]["/v1/quotes"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    amortizing = _WireQuoteResponse.model_validate(example).offers[1].installment_schedule()
    assert amortizing is not None
    assert [p.amount for p in amortizing.payments] == [507_520_000] * 3


def _loan_event_validator(spec: dict[str, Any]) -> Any:
    """JSON Schema 2020-12 (OpenAPI 3.1's) over the document, so that its ``#/components/...`` references resolve."""
    validator = importlib.import_module("jsonschema").Draft202012Validator
    return validator({**spec, "$ref": "#/components/schemas/LoanEvent"})


def test_a_loan_event_as_the_outbox_writes_it_is_the_documented_schema(spec: dict[str, Any]) -> None:
    from aggregator.loan_events import loan_event
    from aggregator.outbox import event_body, event_id_for, loan_view
    from store.aggregator import LoanRow

    validator = _loan_event_validator(spec)
    example = spec["webhooks"]["loanEvent"]["post"]["requestBody"]["content"]["application/json"]["example"]
    validator.validate(example)
    loan = LoanRow(
        id="3b1f7d0e-52a4-5c1e-9d2e-7f6a1c0b4e11",
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "a1" * 20,
        onchain_loan_id=7,
        offer_digest="0x" + "5e" * 32,
        provider_id="sim-bank",
        status="repaid",
        asset="USDC",
        principal=10**9,
        outstanding_principal=0,
    )
    repaid = loan_event(
        "LoanRepaid",
        {
            "payer": "0x" + "b0" * 20,
            "interestPaid": 12,
            "principalPaid": 10**9,
            "outstandingPrincipal": 0,
            "paymentRef": b"\0" * 32,
        },
        tx_hash="0x" + "ab" * 32,
        log_index=3,
        block_number=412,
        status_after="repaid",
    )
    assert repaid is not None
    body = event_body(
        event_id_for(loan.id, repaid.event_type, repaid.key),
        repaid.event_type,
        2,
        datetime(2030, 1, 1, tzinfo=UTC),
        loan_view(loan, "ref-7"),
        repaid.data,
    )
    validator.validate(body)
    assert set(body) == set(example)
    assert set(body["loan"]) == set(example["loan"])
    assert set(body["data"]) == set(example["data"])
    assert body["data"]["principal_paid"] == "1000000000"
    assert not validator.is_valid(body | {"sequence": 0})


def test_paid_in_full_belongs_to_a_payment() -> None:
    event = {
        "protocol_version": "1",
        "event_id": "evt-1",
        "type": "payment.received",
        "offer_ref": "o-1",
        "payment_ref": "pay-1",
        "amount": "1.00",
        "occurred_at": "2030-01-01T00:00:00Z",
    }
    assert WebhookEvent.model_validate(event | {"paid_in_full": True}).paid_in_full
    assert not WebhookEvent.model_validate(event).paid_in_full
    funded = {k: v for k, v in event.items() if k not in ("payment_ref", "amount")} | {"type": "offer.funded"}
    with pytest.raises(ValidationError, match=r"paid_in_full belongs to payment\.received"):
        WebhookEvent.model_validate(funded | {"paid_in_full": True})
