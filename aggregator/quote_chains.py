"""Which of a credit request's chains its loan may open on, and so which providers are asked: the chains whose
contracts would refuse it (``refused_chains``: the collateral's terms there, ``aggregator.collateral_limits``, and
each chain's own price of the collateral), those whose clock runs ahead of ours by more than ``CHAIN_CLOCK_MARGIN``
of a quote's lifetime (``clocks_ahead``: an offer's expiry is judged by the chain's block time), the providers that
lend only on such chains left out, the reason named (``left_out``), and the debt each remaining chain's collateral
carries (``debt_ceilings``). Pure: ``aggregator.quote_pipeline`` reads the figures."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.assets import Asset
from aggregator.collateral_limits import CollateralLimit, DebtCeiling
from aggregator.fanout import ProviderOutcome
from aggregator.quote_adverse import case
from aggregator.quote_offers import ValidRequest
from providers.base import ProviderAdapter
from risk.onchain_source import OnchainReading
from risk.policy import RiskDecision, collateral_limit
from risk.reasons import COLLATERAL_NOT_ACCEPTED

#: the share of a quote's lifetime a chain's latest block may be ahead of this platform's clock: a chain further
#: ahead is left out of the request (its offers would expire early there, by its ``block.timestamp``)
CHAIN_CLOCK_MARGIN = 0.1


def refused_chains(
    valid: ValidRequest,
    decision: RiskDecision,
    limits: dict[str, CollateralLimit],
    prices: Mapping[str, tuple[Asset, ...] | str],
) -> dict[str, str]:
    """The request's chains whose contracts would refuse its loan, each with why: the collateral's own LTV below
    the grade's, frozen or over its supply cap, the CreditAggregator paused (``CollateralLimit.refusal``); or the
    loan above the LTV on that chain's own price of the collateral (``prices``: each chain's, when several are
    asked), or that chain's feeds not pricing it now (its ``openPosition`` would refuse the stale price)."""
    refused = {}
    for name in valid.chains:
        priced = prices.get(name)
        if isinstance(priced, str):
            refused[name] = f"the price feeds on {name} do not price the loan now ({priced})"
            continue
        on_chain = valid if priced is None else replace(valid, asset=priced[0], collateral=priced[1])
        limit = limits.get(name)
        if limit is not None:
            reason = limit.refusal(
                valid.collateral,
                valid.collateral_amount,
                valid.amount,
                on_chain.collateral_value,
                decision.max_ltv_bps,
            )
        elif valid.amount > collateral_limit(on_chain.collateral_value, decision.max_ltv_bps):
            reason = f"the amount is above the grade's loan-to-value limit on {name}'s price of the collateral"
        else:
            reason = None
        if reason is not None:
            refused[name] = reason
    return refused


def debt_ceilings(
    valid: ValidRequest,
    decision: RiskDecision,
    limits: dict[str, CollateralLimit],
    prices: Mapping[str, tuple[Asset, ...] | str],
) -> dict[str, DebtCeiling]:
    """The largest debt the collateral carries on each of the request's chains, on that chain's own price of it
    (``prices`` as ``refused_chains`` reads them) at the lower of the grade's LTV and the asset's there."""
    ceilings = {}
    for name in valid.chains:
        priced = prices.get(name)
        if isinstance(priced, str):  # refused: not priced there now
            continue
        on_chain = valid if priced is None else replace(valid, asset=priced[0], collateral=priced[1])
        ceilings[name] = DebtCeiling.on(name, on_chain.collateral_value, decision.max_ltv_bps, limits.get(name))
    return ceilings


def clocks_ahead(
    chains: Sequence[str], reading: OnchainReading | None, now: datetime, quote_ttl: timedelta
) -> dict[str, str]:
    """The chains whose latest block (as the wallet's history was read at, this request) is past ``now`` by more
    than ``CHAIN_CLOCK_MARGIN`` of the quote's lifetime, each with why: an offer's expiry is set by this clock
    and judged by the chain's (``block.timestamp``), so there it would expire early — past the lifetime, before
    it was made (a devnet whose time was moved on with ``evm_increaseTime``)."""
    ttl = quote_ttl.total_seconds()
    margin = ttl * CHAIN_CLOCK_MARGIN
    ahead = {}
    for name in chains:
        chain = reading.readings.get(name) if reading is not None else None
        if chain is not None and (lead := chain.head_timestamp - now.timestamp()) > margin:
            ahead[name] = (
                f"{name}'s clock is ahead: its latest block is {lead:.0f} s past this platform's time (more than "
                f"{margin:.0f} s of a quote's {ttl:.0f} s): an offer there would expire early by the chain's time"
            )
    return ahead


def left_out(
    providers: list[ProviderAdapter],
    chains: Sequence[str],
    refused: dict[str, str],
    by_collateral: Collection[str] = (),
) -> tuple[list[ProviderAdapter], list[ProviderOutcome]]:
    """``providers`` split into those to ask and the outcomes of those left out: a provider every requested chain of
    which (its declared ones, or all) is ``refused`` is ineligible with the chains' reasons, never asked; one that
    lends on none of the requested chains is ineligible as its capability check has it (``lends_elsewhere``). A
    provider left out on a chain refused for the collateral's terms (``by_collateral``, ``refused_chains``) is so for
    the borrower's request: its outcome's adverse-action reason is R45, naming the first such chain's reason."""
    asked, left = [], []
    for provider in providers:
        capabilities = provider.capabilities()
        mine = [name for name in chains if not capabilities.chains or name in capabilities.chains]
        adverse = []
        if not mine:
            reason = capabilities.lends_elsewhere(chains) or "none of the requested chains"
        elif all(name in refused for name in mine):
            reason = "; ".join(refused[name] for name in mine)[:512]
            collateral = [refused[name] for name in mine if name in by_collateral]
            adverse = [case(COLLATERAL_NOT_ACCEPTED, collateral[0])] if collateral else []
        else:
            asked.append(provider)
            continue
        left.append(ProviderOutcome(provider.provider_id, "ineligible", reason, 0, adverse=adverse))
    return asked, left
