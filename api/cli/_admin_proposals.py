"""The kinds of ``creditmesh admin propose KIND …``: each one's help, its arguments and the calls it proposes (the
calls themselves are built by ``contracts.governance.parameters``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.governance import parameters
from contracts.governance.service import CallsFor, production_guard

Arguments = list[tuple[str, dict[str, Any]]]
INT: dict[str, Any] = {"type": int}
# kind → (help, its arguments, the proposal it builds)
PROPOSALS: dict[str, tuple[str, Arguments, Callable[[argparse.Namespace], CallsFor]]] = {
    "grace-period": (
        "CreditAggregator.setGracePeriod(seconds)",
        [("seconds", INT)],
        lambda a: parameters.grace_period(a.seconds),
    ),
    "reserve-factor": (
        "LendingPool:ASSET.setReserveFactor(bps)",
        [("asset", {}), ("bps", INT)],
        lambda a: parameters.reserve_factor(a.asset, a.bps),
    ),
    "rate-model": (
        "LendingPool:ASSET.setRateModel(base, slope1, slope2, optimal), basis points",
        [("asset", {}), ("base", INT), ("slope1", INT), ("slope2", INT), ("optimal", INT)],
        lambda a: parameters.rate_model(a.asset, a.base, a.slope1, a.slope2, a.optimal),
    ),
    "collateral": (
        "CollateralManager.setCollateralParameters(token, ltv, threshold, bonus, supply cap in whole tokens)",
        [("asset", {}), ("ltv", INT), ("threshold", INT), ("bonus", INT), ("supply_cap", INT)],
        lambda a: parameters.collateral_parameters(a.asset, a.ltv, a.threshold, a.bonus, a.supply_cap),
    ),
    "liquidation-thresholds": (
        "CollateralManager.setLiquidationThresholds(full close value, min leftover value), USD with 8 decimals",
        [("full_close_value", INT), ("min_leftover_value", INT)],
        lambda a: parameters.liquidation_thresholds(a.full_close_value, a.min_leftover_value),
    ),
    "price-feed": (
        "CollateralManager.setPriceFeed(token, feed, heartbeat seconds)",
        [("asset", {}), ("feed", {}), ("heartbeat", INT)],
        lambda a: parameters.price_feed(a.asset, a.feed, a.heartbeat),
    ),
    "settlement-address": (
        "CreditAggregator.setSettlementAddress(provider id or name, account)",
        [("provider", {}), ("settlement_account", {"metavar": "account"})],  # not --account's dest (the key)
        lambda a: guarded(parameters.settlement_address(a.provider, a.settlement_account), a.settlement_account),
    ),
    "register-pool": (
        "CreditAggregator.registerPool(pool address or record key)",
        [("pool", {})],
        lambda a: parameters.register_pool(a.pool),
    ),
    "unpause": (
        "unpause every contract that is paused (--liquidations: liquidations only)",
        [("--liquidations", {"action": "store_true"})],
        lambda a: parameters.unpause(liquidations=a.liquidations),
    ),
    "grant": (
        "grantRole on every contract with the role",
        [("role", {}), ("holder", {})],
        lambda a: guarded(parameters.grant_role(a.role, a.holder), a.holder),
    ),
    "revoke": (
        "revokeRole on every contract with the role",
        [("role", {}), ("holder", {})],
        lambda a: parameters.revoke_role(a.role, a.holder),
    ),
    "rotate": (
        "one batch: grant the new holder on every contract with the role, then revoke the old",
        [("role", {}), ("old", {}), ("new", {})],
        lambda a: guarded(parameters.rotate_role(a.role, a.old, a.new), a.new),
    ),
    "batch": (
        "calls from a JSON file: [{contract, function, args}, ...]",
        [("file", {"type": Path})],
        lambda a: parameters.batch_file(a.file),
    ),
}


def guarded(calls: CallsFor, holder: str) -> CallsFor:
    """``calls``, once ``holder`` (an account the proposal gives a role or funds) passed the production guard."""
    production_guard([holder])
    return calls
