"""Offers disclosed as their providers answer (``aggregator.early_disclosure``, ``fan_out``'s ``on_answer``): the
drafts and decision records come out in the fan-out's order whatever order the answers came in, answers wait for the
MLA status, an error is raised where disclosing after the fan-out raised it, and the late providers' timeouts are not
answers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import pytest

from aggregator.early_disclosure import EarlyDisclosure
from aggregator.fanout import ProviderOutcome, fan_out
from compliance import DecisionRecord
from providers.models import Capabilities, QuoteRequest

pytestmark = pytest.mark.unit


class _Record:
    def __init__(self, name: str) -> None:
        self.name, self.hashed = name, 0

    def record_hash(self) -> str:
        self.hashed += 1
        return self.name


def _outcome(provider: str) -> ProviderOutcome:
    return ProviderOutcome(provider, "offered", "1 offer(s)", 1)


def _disclosing(seen: list[tuple[str, bool]]) -> EarlyDisclosure[str]:
    def disclose(outcome: ProviderOutcome, records: list[DecisionRecord], covered: bool) -> list[str]:
        seen.append((outcome.provider_id, covered))
        records.append(cast(DecisionRecord, _Record(f"record:{outcome.provider_id}")))
        return [f"draft:{outcome.provider_id}:{covered}"]

    return EarlyDisclosure(disclose)


def test_answers_in_any_order_come_out_in_the_fan_outs_order_each_disclosed_once() -> None:
    seen: list[tuple[str, bool]] = []
    disclosing = _disclosing(seen)
    outcomes = [_outcome(name) for name in ("a", "b", "c")]
    disclosing.covered(False)
    disclosing.answered(outcomes[2])
    disclosing.answered(outcomes[0])
    records: list[DecisionRecord] = [cast(DecisionRecord, _Record("screening"))]
    drafts = disclosing.drafts(outcomes, False, records)  # "b" had not answered: disclosed now
    assert drafts == ["draft:a:False", "draft:b:False", "draft:c:False"]
    assert [cast(Any, r).name for r in records] == ["screening", "record:a", "record:b", "record:c"]
    assert seen == [("c", False), ("a", False), ("b", False)]
    assert all(cast(Any, r).hashed == 1 for r in records[1:])


def test_answers_before_the_mla_status_wait_for_it_and_none_is_taken_after_the_drafts() -> None:
    seen: list[tuple[str, bool]] = []
    disclosing = _disclosing(seen)
    first, late = _outcome("a"), _outcome("b")
    disclosing.answered(first)
    assert seen == []
    disclosing.covered(True)
    assert seen == [("a", True)]
    assert disclosing.drafts([first], True, []) == ["draft:a:True"]
    disclosing.answered(late)
    assert seen == [("a", True)]


def test_an_error_while_disclosing_an_early_answer_is_raised_by_the_drafts() -> None:
    def disclose(outcome: ProviderOutcome, records: list[DecisionRecord], covered: bool) -> list[str]:
        raise RuntimeError(f"cannot disclose {outcome.provider_id}")

    disclosing: EarlyDisclosure[str] = EarlyDisclosure(disclose)
    disclosing.covered(False)
    outcome = _outcome("a")
    disclosing.answered(outcome)  # on the event loop: must not raise there
    with pytest.raises(RuntimeError, match="cannot disclose a"):
        disclosing.drafts([outcome], False, [])


class _Lender:
    kind = "traditional"

    def __init__(self, provider_id: str, seconds: float) -> None:
        self.provider_id, self.seconds = provider_id, seconds

    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}))

    def lending_pool(self) -> None:
        return None

    async def quote(self, request: QuoteRequest) -> list[Any]:
        await asyncio.sleep(self.seconds)
        return []


async def test_fan_out_tells_each_answer_as_it_comes_and_not_the_late_ones() -> None:
    query = QuoteRequest("r", "USDC", 6, 10**9, 30, "", "WETH", 10**18, 18, (), 2, "US-FL")
    told: list[str] = []
    lenders = [_Lender("slow", 0.05), _Lender("fast", 0.0), _Lender("late", 5.0)]
    outcomes = await fan_out(cast(Any, lenders), query, 0.3, on_answer=lambda outcome: told.append(outcome.provider_id))
    assert told == ["fast", "slow"]
    assert [(o.provider_id, o.outcome) for o in outcomes] == [
        ("fast", "offered"),
        ("late", "timeout"),
        ("slow", "offered"),
    ]


async def test_a_heavy_answer_is_disclosed_in_a_worker_thread_and_its_drafts_kept_in_order() -> None:
    loop_thread = threading.get_ident()
    where: dict[str, int] = {}
    signed: list[tuple[str, int]] = []

    def disclose(outcome: ProviderOutcome, records: list[DecisionRecord], covered: bool) -> list[str]:
        where[outcome.provider_id] = threading.get_ident()
        return [f"draft:{outcome.provider_id}"]

    def after(drafts: list[str]) -> None:  # signing: on the event loop, as each answer is disclosed
        signed.extend((draft, threading.get_ident()) for draft in drafts)

    disclosing: EarlyDisclosure[str] = EarlyDisclosure(
        disclose, after=after, offload=lambda outcome: outcome.provider_id == "heavy"
    )
    heavy, light = _outcome("heavy"), _outcome("light")
    disclosing.covered(False)
    disclosing.answered(heavy)
    disclosing.answered(light)
    await disclosing.settled()
    assert disclosing.drafts([heavy, light], False, []) == ["draft:heavy", "draft:light"]
    assert where["light"] == loop_thread
    assert where["heavy"] != loop_thread, "the heavy answer is not disclosed on the event loop"
    assert sorted(signed) == [("draft:heavy", loop_thread), ("draft:light", loop_thread)]


async def test_an_error_while_disclosing_in_a_worker_thread_is_raised_by_the_drafts() -> None:
    def disclose(outcome: ProviderOutcome, records: list[DecisionRecord], covered: bool) -> list[str]:
        raise RuntimeError(f"cannot disclose {outcome.provider_id}")

    disclosing: EarlyDisclosure[str] = EarlyDisclosure(disclose, offload=lambda outcome: True)
    disclosing.covered(False)
    outcome = _outcome("a")
    disclosing.answered(outcome)
    await disclosing.settled()
    with pytest.raises(RuntimeError, match="cannot disclose a"):
        disclosing.drafts([outcome], False, [])
