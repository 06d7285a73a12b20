"""Ask every eligible provider at once; one deadline for all; every provider's outcome recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from aggregator.offer_checks import own_offers
from providers.base import ProviderAdapter, ProviderError
from providers.models import Decline, ProviderOffer, QuoteRequest
from providers.resilience import deadline as remaining_time
from risk.reasons import Reason


@dataclass
class ProviderOutcome:
    """``outcome`` is one of offered, declined, ineligible, failed, timeout, dropped (every offer of it: not its own
    offer for the request, ``aggregator.offer_checks``, or by disclosure and compliance); ``detail`` names the
    reasons offers were dropped. ``chains``: the chains the provider declared it lends on (``Capabilities.chains``;
    empty: any), where its offers are placed."""

    provider_id: str
    outcome: str
    detail: str
    latency_ms: int
    offers: list[ProviderOffer] = field(default_factory=list)
    chains: frozenset[str] = frozenset()
    #: why its offers not kept were dropped, each naming the offer (``detail`` lists them)
    dropped: list[str] = field(default_factory=list)
    #: the adverse-action reasons the borrower's own request held its offers back for (a usury cap, the collateral's
    #: terms, the exposure, the screening), each naming the case; none: the lender's own doing (declined, late,
    #: failed, offers not its own) — ``aggregator.quote_adverse``
    adverse: list[Reason] = field(default_factory=list)


async def _ask(provider: ProviderAdapter, query: QuoteRequest) -> ProviderOutcome:
    started = time.perf_counter()
    capabilities = provider.capabilities()
    reason = capabilities.accepts(query)
    if reason is not None:
        return ProviderOutcome(provider.provider_id, "ineligible", reason, 0)
    try:
        answer = await provider.quote(query)
    except ProviderError as err:
        return ProviderOutcome(provider.provider_id, "failed", str(err), _ms(started))
    if isinstance(answer, Decline):
        return ProviderOutcome(provider.provider_id, "declined", answer.reason, _ms(started))
    offers, dropped = own_offers(answer, provider.provider_id, provider.lending_pool(), query)
    if dropped and not offers:
        return ProviderOutcome(provider.provider_id, "dropped", "; ".join(dropped)[:512], _ms(started), dropped=dropped)
    offered = "; ".join([f"{len(offers)} offer(s)", *dropped])[:512]
    return ProviderOutcome(provider.provider_id, "offered", offered, _ms(started), offers, capabilities.chains, dropped)


async def fan_out(
    providers: Sequence[ProviderAdapter],
    query: QuoteRequest,
    deadline: float,
    on_answer: Callable[[ProviderOutcome], None] | None = None,
) -> list[ProviderOutcome]:
    """The outcome of every provider within ``deadline`` seconds; the late ones are cancelled and reported. It
    returns as soon as the last provider answers. ``on_answer`` is called on the event loop with each provider's
    outcome as it comes (not with the late ones' timeouts), while the others are still being asked: the caller's
    work on the early answers waits for no one."""
    with remaining_time(deadline):  # retries inside each provider call stop before the fan-out's deadline
        tasks = {asyncio.create_task(_ask(provider, query)): provider.provider_id for provider in providers}
    if not tasks:
        return []
    if on_answer is not None:
        for task in tasks:
            task.add_done_callback(partial(_answered, on_answer))
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    deadline_ms = int(deadline * 1000)
    outcomes = [task.result() for task in done]
    outcomes += [
        ProviderOutcome(tasks[t], "timeout", f"no answer within {deadline_ms} ms", deadline_ms) for t in pending
    ]
    return sorted(outcomes, key=lambda outcome: outcome.provider_id)


def _answered(on_answer: Callable[[ProviderOutcome], None], task: asyncio.Task[ProviderOutcome]) -> None:
    if not task.cancelled() and task.exception() is None:
        on_answer(task.result())


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
