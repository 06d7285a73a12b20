"""The CollateralManager's liquidation thresholds within bounds that keep every position liquidatable: a full-close
value of at most MAX_FULL_CLOSE_VALUE and a minimum leftover of at most half of it. Unbounded, the Timelock could
set (0, 2^127) — or any leftover above half the full-close value — and a position over the full-close value, which
may only be liquidated partially, had no repayment leaving enough: every liquidation reverted MustNotLeaveDust."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from tests.contracts.harness import BORROWERS, USDC, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.contracts

BORROWER, LIQUIDATOR = BORROWERS[0], BORROWERS[3]
MAX_FULL_CLOSE = 1_000_000 * 10**8


@pytest.fixture
def h(ethereum_local: DeployedChain) -> Harness:
    harness = Harness(ethereum_local)
    for account in (BORROWER, LIQUIDATOR):
        harness.approve_all(account.address)
    harness.fund(LIQUIDATOR.address, usdc=100_000 * USDC)
    return harness


@pytest.mark.parametrize(
    ("full_close", "min_leftover"),
    [(0, 2**127), (1_000 * 10**8, 3_000 * 10**8), (3_000 * 10**8, 1_500 * 10**8 + 1), (MAX_FULL_CLOSE + 1, 0)],
)
def test_thresholds_that_would_stop_liquidations_are_refused(h: Harness, full_close: int, min_leftover: int) -> None:
    error = h.revert_of(h.manager.functions.setLiquidationThresholds(full_close, min_leftover), h.timelock.address)

    assert (error.name, error.args) == ("InvalidLiquidationThresholds", (full_close, min_leftover))


def test_thresholds_at_the_bounds_are_set_and_a_position_over_the_full_close_value_is_liquidated(h: Harness) -> None:
    assert h.manager.functions.MAX_FULL_CLOSE_VALUE().call() == MAX_FULL_CLOSE
    h.govern(h.manager, "setLiquidationThresholds", MAX_FULL_CLOSE, MAX_FULL_CLOSE // 2)
    assert h.manager.functions.fullCloseValue().call() == MAX_FULL_CLOSE
    h.govern(h.manager, "setLiquidationThresholds", 1_500 * 10**8, 750 * 10**8)  # the leftover at half
    loan_id, _ = h.open_loan(
        BORROWER, principal=2_000 * USDC, originationFee=0, rateBps=max(900, h.min_rate(2_000 * USDC))
    )
    h.set_weth_price(2_400)  # health factor 0.99: the debt (2,000 USD) over the full-close value, partial only

    receipt = h.send(h.manager.functions.liquidate(loan_id, 5_000 * USDC), LIQUIDATOR)

    (event,) = h.manager.events.LoanLiquidated().process_receipt(receipt, errors=DISCARD)
    debt_left = sum(h.aggregator.functions.amountOwed(loan_id).call())
    assert event["args"]["debtRepaid"] > 0
    assert debt_left * 10**2 >= 750 * 10**8  # USDC has 6 decimals: at least the leftover of debt remains
