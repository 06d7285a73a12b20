"""The simulated amortizing lender and the Provider Quote Protocol adapter against each other (in process, over
httpx's ASGI transport): the payments the lender computes itself are exactly the ones creditmesh discloses, for
every shape, its schedule within the term asked (an odd first period included); a reservation on other terms than
quoted is refused; a lender off by a cent is caught."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from aggregator.assets import Asset
from aggregator.offer_terms import lender_schedule, offer_terms, schedule_mismatch, schedule_past_term
from compliance import disclose
from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, Decline, InstallmentSchedule, ProviderOffer, RepaymentShape
from providers.sim.fleet import FailureSpec, InstallmentProduct, SimLender
from providers.sim.lender import create_sim_app
from providers.sim.pricing import PricingSpec
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "sim-unit-secret"
USDC = Asset("USDC", 6, Decimal(1))
START = datetime(2026, 1, 31, 9, tzinfo=UTC)


def _adapter(lender: SimLender) -> HttpLenderAdapter:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sim_app([lender])))
    base = f"http://sim.test/lenders/{lender.lender_id}"
    return HttpLenderAdapter(lender.lender_id, base, SECRET, Capabilities(assets=frozenset({"USDC"})), client)


async def _offer(lender: SimLender, term_days: int = 365) -> tuple[HttpLenderAdapter, ProviderOffer]:
    adapter = _adapter(lender)
    offers = await adapter.quote(replace(REQUEST, term_days=term_days, start_date=START.date(), grade=2))
    assert not isinstance(offers, Decline)
    return adapter, offers[0]


@pytest.mark.parametrize(
    "product",
    [
        InstallmentProduct(),
        InstallmentProduct(frequency="semimonthly", day_count="actual/365"),
        InstallmentProduct(frequency="quarterly", first_due_days=120, balloon_bps=2_500),
        InstallmentProduct(frequency="weekly", day_count="actual/actual", first_due_days=3),
        InstallmentProduct(frequency="biweekly", balloon_bps=1_000),
    ],
    ids=["monthly-from-a-month-end", "semimonthly", "quarterly-odd-first-balloon", "weekly-short-first", "biweekly"],
)
async def test_the_lenders_own_payments_are_the_disclosed_ones(product: InstallmentProduct) -> None:
    _, offer = await _offer(SimLender(lender_id="amortizing", secret=SECRET, installments=product))
    assert offer.repayment is RepaymentShape.INSTALLMENTS
    assert offer.schedule is not None
    assert len(offer.schedule.payments) == offer.installments
    assert schedule_past_term(offer, START, 365) is None, "the schedule ends within the term asked"
    offer, terms = offer_terms(offer, USDC, START)
    disclosure = disclose(terms)
    assert schedule_mismatch(offer, disclosure, USDC) is None
    assert offer.term_days == (disclosure.payments[-1].due - START.date()).days


async def test_a_term_too_short_for_two_installments_is_a_single_payment() -> None:
    _, offer = await _offer(SimLender(lender_id="amortizing", secret=SECRET, installments=InstallmentProduct()), 45)
    assert (offer.repayment, offer.schedule) == (RepaymentShape.SINGLE, None)


async def test_installments_whose_last_one_would_be_a_balloon_are_offered_as_a_single_payment() -> None:
    """520 weekly installments (Actual/365) of $1,500 at 28%: 8.58 a week leaves 22.35 for the last installment, a
    balloon payment (more than twice a regular one). The lender offered them as equal installments with those
    payments, and creditmesh disclosed them so; creditmesh now refuses such terms (docs/compliance.md, rounding
    policy), and the lender, computing by the same policy, offers a single payment instead."""
    weekly = InstallmentProduct(frequency="weekly", day_count="actual/365")
    pricing = PricingSpec(grade_rate_bps={2: 2_800}, term_bps_per_30_days=0, max_term_days=3_650)
    lender = SimLender(lender_id="amortizing", secret=SECRET, installments=weekly, pricing=pricing)
    _, offer = await _offer(lender, 3_640)
    assert (offer.repayment, offer.schedule, offer.rate_bps, offer.term_days) == (
        RepaymentShape.SINGLE,
        None,
        2_800,
        3_640,
    )
    _, offer = await _offer(
        lender.model_copy(update={"pricing": pricing.model_copy(update={"grade_rate_bps": {2: 3_000}})}), 3_640
    )
    assert (offer.repayment, offer.installments) == (RepaymentShape.INSTALLMENTS, 520), "at 30% they can be scheduled"
    offer, terms = offer_terms(offer, USDC, START)
    assert schedule_mismatch(offer, disclose(terms), USDC) is None


async def test_a_reservation_on_the_quoted_schedule_holds_and_one_on_another_is_refused() -> None:
    adapter, quoted = await _offer(SimLender(lender_id="amortizing", secret=SECRET, installments=InstallmentProduct()))
    offer, terms = offer_terms(quoted, USDC, START)
    kept = lender_schedule(offer, disclose(terms), USDC)
    assert kept is not None
    disclosed = replace(offer, schedule=InstallmentSchedule.from_document(kept))
    assert disclosed.schedule is not None
    payments = disclosed.schedule.payments
    other = replace(disclosed.schedule, payments=(replace(payments[0], amount=payments[0].amount + 1), *payments[1:]))
    refused = await adapter.reserve(replace(disclosed, schedule=other), idempotency_key="q-1:1")
    assert not refused.funded
    assert "payments are not the quoted ones" in refused.detail
    assert not (await adapter.reserve(replace(disclosed, rate_bps=offer.rate_bps + 1), "q-1:2")).funded
    held = await adapter.reserve(disclosed, idempotency_key="q-1:3")
    assert held.funded, held.detail


async def test_a_lender_off_by_a_cent_is_caught_before_anything_is_disclosed() -> None:
    lender = SimLender(
        lender_id="careless",
        secret=SECRET,
        installments=InstallmentProduct(),
        failure=FailureSpec(mode="wrong_schedule"),
    )
    _, offer = await _offer(lender)
    offer, terms = offer_terms(offer, USDC, START)
    reason = schedule_mismatch(offer, disclose(terms), USDC)
    assert reason is not None
    assert "installment 1" in reason
    assert date(2026, 2, 28).isoformat() in reason, "a month-end start keeps month ends"
