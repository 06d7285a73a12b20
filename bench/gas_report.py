"""Gas per contract operation on a fresh devnet, beside the published anchors.

Scenario: a borrower's first loan on a pool that already has loans (pool storage warm, the new loan's storage
cold), collateral approved beforehand (no permit); the borrower already holds some USDC (devnet funding).

Run: ``uv run --frozen python -m bench.gas_report``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from web3 import Web3

from chain.config import LOCAL_CHAINS
from chain.devnet import devnets
from contracts.deploy import deploy_to_devnet
from tests.contracts.harness import BORROWERS, DEPLOYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

ANCHORS: dict[str, str] = {
    "openLoan": "Aave v3 borrow 257,306 · Morpho Blue borrow 97,923 + supplyCollateral 91,107",
    "repay (partial)": "Aave v3 repay 189,949 · Morpho Blue repay 80,910",
    "repay (full, close)": "Aave v3 repay 189,949 · Morpho Blue repay 80,910",
    "addCollateral": "Morpho Blue supplyCollateral 91,107",
    "liquidate (partial)": "Aave v3 liquidation 383,994 · Morpho Blue liquidate 107,409",
    "liquidate (full)": "Aave v3 liquidation 383,994 · Morpho Blue liquidate 107,409",
    "pool deposit": "Aave v3 supply 176,366",
    "pool withdraw": "-",
}
TARGETS = {"openLoan": 250_000, "repay (partial)": 110_000, "liquidate (partial)": 160_000}


def measure(h: Harness) -> dict[str, int]:
    gas: dict[str, int] = {}
    warm, first, liquidator, lender = BORROWERS
    for account in BORROWERS:
        h.approve_all(account.address)
    h.fund(liquidator.address, usdc=100_000 * USDC)
    h.fund(lender.address, usdc=100_000 * USDC)
    for _ in range(3):  # the pool already has loans
        h.open_loan(warm)
    loan_id, receipt = h.open_loan(
        first, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100
    )
    gas["openLoan"] = receipt["gasUsed"]
    h.advance(86_400)
    gas["repay (partial)"] = h.send(h.aggregator.functions.repay(loan_id, 100 * USDC), first)["gasUsed"]
    gas["addCollateral"] = h.send(h.manager.functions.addCollateral(loan_id, WETH // 10), first)["gasUsed"]
    h.advance(86_400)
    gas["repay (full, close)"] = h.send(h.aggregator.functions.close(loan_id), first)["gasUsed"]

    partial, _ = h.open_loan(first, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100)
    full, _ = h.open_loan(warm, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100)
    h.set_weth_price(2_400)  # health factor ~0.99: close factor 50%
    gas["liquidate (partial)"] = h.send(h.manager.functions.liquidate(partial, 600 * USDC), liquidator)["gasUsed"]
    h.set_weth_price(2_200)  # health factor ~0.91: close factor 100%
    gas["liquidate (full)"] = h.send(h.manager.functions.liquidate(full, 10_000 * USDC), liquidator)["gasUsed"]

    gas["pool deposit"] = h.send(h.pool.functions.deposit(1_000 * USDC, lender.address), lender)["gasUsed"]
    withdraw = h.pool.functions.withdraw(500 * USDC, lender.address, lender.address)
    gas["pool withdraw"] = h.send(withdraw, lender)["gasUsed"]
    return gas


def main() -> None:
    chain_config = next(c for c in LOCAL_CHAINS if c.chain_id == 31337)
    with tempfile.TemporaryDirectory() as tmp, devnets([chain_config], free_ports=True) as running:
        (devnet,) = running
        record = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, Path(tmp) / "record.json")
        chain = DeployedChain(devnet, record, Web3(Web3.HTTPProvider(devnet.rpc_url)))
        assert DEPLOYER.address
        gas = measure(Harness(chain))
    print(f"{'operation':22} {'gas':>9}  {'target':>8}  anchors (not like-for-like, see docs/contracts-gas.md)")
    for name, used in gas.items():
        target = TARGETS.get(name)
        mark = "" if target is None else f"{target:>8,}"
        print(f"{name:22} {used:>9,}  {mark:>8}  {ANCHORS[name]}")


if __name__ == "__main__":
    main()
