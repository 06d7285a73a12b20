"""Reconciliation of the transactions the platform sent as its own (their confirmed intents) with the events they
must have made, and of the liquidation holds on-chain with the operator's transactions that made them.

Each confirmed intent's transaction has its event: a relayed repayment a ``LoanRepaid``; the operator's
``markDefault`` a ``LoanDefaulted``, ``cancelUnfunded`` a ``LoanCancelled``, ``holdLiquidation`` a
``LiquidationHoldChanged(held=true)`` and ``releaseLiquidationHold`` one with ``held=false`` — each of the loan its
key names (each of the operator's has one intent per attempt, each naming the loan). Only the CreditAggregator's
operator may hold a loan's liquidation, and the platform holds one only as an intent of its own
(``aggregator.servicing.defaults``): a ``LiquidationHoldChanged`` in any other transaction is the operator's key used
outside the platform, and a loan whose liquidation nobody may take."""

from __future__ import annotations

from dataclasses import dataclass

from compliance._reconcile_values import Category, ChainResult, ChainScope, Fact, Records, in_scope, item

HOLD_EVENT = "LiquidationHoldChanged"
HOLD_INTENTS = ("holdLiquidation:", "releaseLiquidationHold:")


@dataclass(frozen=True, slots=True)
class Effect:
    """The event an intent's transaction must hold: its name, its contract and, for a hold, the flag."""

    event: str
    contract: str
    held: bool | None = None


#: an intent key's first part → the event its transaction makes
EFFECTS = {
    "repay": Effect("LoanRepaid", "CreditAggregator"),
    "markDefault": Effect("LoanDefaulted", "CreditAggregator"),
    "cancelUnfunded": Effect("LoanCancelled", "CreditAggregator"),
    "holdLiquidation": Effect(HOLD_EVENT, "CollateralManager", held=True),
    "releaseLiquidationHold": Effect(HOLD_EVENT, "CollateralManager", held=False),
}
RELAYED_PREFIXES = tuple(f"{kind}:" for kind in EFFECTS)


def match_relayed_intents(result: ChainResult, scope: ChainScope, facts: list[Fact], records: Records) -> None:
    """Each intent of ours confirmed in the range has its event in its transaction (see the module docstring)."""
    by_tx: dict[str, list[Fact]] = {}
    for fact in facts:
        by_tx.setdefault(fact.tx_hash.lower(), []).append(fact)
    for intent in records.relayed_intents:
        if not in_scope(scope, intent.block_number):
            continue
        kind, _, rest = intent.key.partition(":")
        effect = EFFECTS.get(kind)
        if effect is None:
            continue
        loan_ref = _loan_ref(kind, rest)
        made = by_tx.get(intent.tx_hash.lower(), [])
        if any(_is_effect(fact, effect, loan_ref) for fact in made):
            result.matched()
            continue
        of_loan = "" if loan_ref is None else f" of loan {loan_ref}"
        flag = "" if effect.held is None else f" (held={str(effect.held).lower()})"
        detail = (
            f"sent and recorded confirmed in {intent.tx_hash} (block {intent.block_number}); the chain has no "
            f"{effect.event}{flag}{of_loan} in it (never mined there, or reorged away)"
        )
        result.add(item(scope, Category.RECORDED_NOT_ONCHAIN, intent.key, f"{kind} intent", detail, None, intent.key))


def match_liquidation_holds(result: ChainResult, scope: ChainScope, facts: list[Fact], records: Records) -> None:
    """Each ``LiquidationHoldChanged`` was made by a hold or release of ours: a transaction signed for one of its
    intents (``Records.hold_transactions``: any attempt, the intent confirmed or not yet — the run reads to the
    confirmed head, which the transaction manager may not have marked confirmed yet)."""
    ours = {tx_hash.lower() for tx_hash in records.hold_transactions}
    for fact in facts:
        if fact.event != HOLD_EVENT or fact.contract != "CollateralManager":
            continue
        if fact.tx_hash.lower() in ours:
            continue  # matched from the intent's side once its intent is confirmed
        what = "held" if _held(fact) else "released"
        detail = (
            f"loan {fact.uint('loanId')}'s liquidation {what} in a transaction no intent of ours sent: the operator's "
            "key was used outside the platform"
        )
        result.add(item(scope, Category.ONCHAIN_NOT_RECORDED, f"loan {fact.uint('loanId')}", HOLD_EVENT, detail, fact))


def _is_effect(fact: Fact, effect: Effect, loan_ref: int | None) -> bool:
    if fact.event != effect.event or fact.contract != effect.contract:
        return False
    if loan_ref is not None and fact.uint("loanId") != loan_ref:
        return False
    return effect.held is None or _held(fact) is effect.held


def _loan_ref(kind: str, rest: str) -> int | None:
    """The on-chain loan id an operator's intent key names (``<chain id>:<contract>:<loan id>``, a later attempt's
    ``:<n>`` after it: ``aggregator.servicing.intent_keys``); None for a repayment's (keyed by its calldata)."""
    if kind == "repay":
        return None
    parts = rest.split(":")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None


def _held(fact: Fact) -> bool:
    return str(fact.args["held"]).lower() in ("true", "1")
