"""Gas per contract operation on a fresh devnet, beside the published anchors.

Scenario: a borrower's first loan on a pool that already has loans (pool storage warm, the new loan's storage
cold), collateral approved beforehand (no permit); the borrower already holds some USDC (devnet funding). The
relayed repayment (``repayWithPermit``) is sent by the relayer with the borrower's ``Repayment`` signature (its
first repayment nonce, so a fresh word of the nonce bitmap) and an EIP-2612 permit of USDC.

Two columns: the transaction's ``gasUsed`` (what a sender pays for; the targets apply to it) and its execution gas,
``gasUsed`` less the 21,000 intrinsic and the calldata's 4/16 gas per zero/non-zero byte, which is what forge's gas
snapshots, and so the published anchors, measure. Then each contract's runtime size against EIP-170's 24,576 bytes.

Run: ``uv run --frozen python -m bench.gas_report``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from web3 import Web3
from web3.types import TxReceipt

from chain.config import LOCAL_CHAINS
from chain.devnet import devnets
from contracts.deploy import deploy_to_devnet
from tests.contracts.harness import BORROWERS, DEPLOYER, OPERATOR, QUOTE_SIGNER, RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain

ANCHORS: dict[str, str] = {
    "openLoan": "Aave v3 borrow 257,306 · Morpho Blue borrow 97,923 + supplyCollateral 91,107",
    "repay (partial)": "Aave v3 repay 189,949 · Morpho Blue repay 80,910",
    "repay (full, close)": "Aave v3 repay 189,949 · Morpho Blue repay 80,910",
    "repayWithPermit": "-",
    "addCollateral": "Morpho Blue supplyCollateral 91,107",
    "liquidate (partial)": "Aave v3 liquidation 383,994 · Morpho Blue liquidate 107,409",
    "liquidate (full)": "Aave v3 liquidation 383,994 · Morpho Blue liquidate 107,409",
    "pool deposit": "Aave v3 supply 176,366",
    "pool withdraw": "-",
    "openLoan (with fee)": "-",
    "impair": "-",
    "markDefault (impairs)": "-",
    "invalidateNonces": "Permit2 invalidateUnorderedNonces",
}
TARGETS = {"openLoan": 265_000, "repay (partial)": 110_000, "liquidate (partial)": 160_000}
MAX_RUNTIME_BYTES = 24_576  # EIP-170
SIZED = ("CreditAggregator", "CollateralManager", "LendingPool", "CreditScoringOracle")


INTRINSIC_GAS = 21_000


def execution_gas(h: Harness, receipt: TxReceipt) -> int:
    """gasUsed less the intrinsic and calldata gas (EIP-2028 prices): the gas the call itself used."""
    data = bytes(h.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    calldata = sum(4 if byte == 0 else 16 for byte in data)
    return receipt["gasUsed"] - INTRINSIC_GAS - calldata


def measure(h: Harness) -> dict[str, TxReceipt]:
    receipts: dict[str, TxReceipt] = {}
    warm, first, liquidator, lender = BORROWERS
    for account in BORROWERS:
        h.approve_all(account.address)
    h.fund(liquidator.address, usdc=100_000 * USDC)
    h.fund(lender.address, usdc=100_000 * USDC)
    for _ in range(3):  # the pool already has loans
        h.open_loan(warm)
    h.advance(600)  # and has accrued interest since (a fixed step, so that the numbers do not depend on the clock)
    loan_id, receipts["openLoan"] = h.open_loan(
        first, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100
    )
    h.advance(86_400)
    receipts["repay (partial)"] = h.send(h.aggregator.functions.repay(loan_id, 100 * USDC), first)
    receipts["addCollateral"] = h.send(h.manager.functions.addCollateral(loan_id, WETH // 10), first)
    h.advance(86_400)
    receipts["repay (full, close)"] = h.send(h.aggregator.functions.close(loan_id), first)

    partial, _ = h.open_loan(first, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100)
    full, _ = h.open_loan(warm, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100)
    h.set_weth_price(2_400)  # health factor ~0.99: close factor 50%
    receipts["liquidate (partial)"] = h.send(h.manager.functions.liquidate(partial, 600 * USDC), liquidator)
    h.set_weth_price(2_200)  # health factor ~0.91: close factor 100%
    receipts["liquidate (full)"] = h.send(h.manager.functions.liquidate(full, 10_000 * USDC), liquidator)

    receipts["pool deposit"] = h.send(h.pool.functions.deposit(1_000 * USDC, lender.address), lender)
    withdraw = h.pool.functions.withdraw(500 * USDC, lender.address, lender.address)
    receipts["pool withdraw"] = h.send(withdraw, lender)

    h.set_weth_price(3_000)
    # The fee vests in the pool's vesting slot, already written by the warm loans' fees.
    fee_loan, receipts["openLoan (with fee)"] = h.open_loan(
        first, principal=2_000 * USDC, originationFee=20 * USDC, rateBps=h.min_rate(2_000 * USDC) + 100
    )
    h.set_weth_price(1_500)
    receipts["impair"] = h.send(h.aggregator.functions.impair(fee_loan), lender)
    h.advance(38 * 86_400)
    receipts["markDefault (impairs)"] = h.send(h.aggregator.functions.markDefault(fee_loan), OPERATOR)
    receipts["invalidateNonces"] = h.send(h.aggregator.functions.invalidateNonces(2**60, 0b1011), QUOTE_SIGNER)

    # Last, so that every scenario above is unchanged: a relayed partial repayment a day into a fresh loan, with the
    # borrower's Repayment signature (its first repayment nonce: a fresh bitmap word) and a USDC permit.
    h.set_weth_price(3_000)
    h.send(h.usdc_feed.functions.setAnswer(10**8), DEPLOYER)  # fresh after the 38 days above
    relayed, _ = h.open_loan(first, principal=2_000 * USDC, originationFee=0, rateBps=h.min_rate(2_000 * USDC) + 100)
    h.advance(86_400)
    call = h.aggregator.functions.repayWithPermit(*h.repayment_args(first, relayed, 100 * USDC))
    receipts["repayWithPermit"] = h.send(call, RELAYER)
    return receipts


def runtime_sizes(h: Harness) -> dict[str, int]:
    """Each deployed contract's runtime bytecode size, bytes."""
    keys = {"LendingPool": "LendingPool:USDC"}
    return {name: len(h.w3.eth.get_code(h.chain.record.address(keys.get(name, name)))) for name in SIZED}


def main() -> None:
    chain_config = next(c for c in LOCAL_CHAINS if c.chain_id == 31337)
    with tempfile.TemporaryDirectory() as tmp, devnets([chain_config], free_ports=True) as running:
        (devnet,) = running
        record = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, Path(tmp) / "record.json")
        chain = DeployedChain(devnet, record, Web3(Web3.HTTPProvider(devnet.rpc_url)))
        assert DEPLOYER.address
        h = Harness(chain)
        receipts = measure(h)
        print(f"{'operation':22} {'gasUsed':>9} {'execution':>10}  {'target':>8}  anchors (see docs/contracts-gas.md)")
        for name, receipt in sorted(receipts.items(), key=lambda item: list(ANCHORS).index(item[0])):
            target = TARGETS.get(name)
            mark = "" if target is None else f"{target:>8,}"
            used, execution = receipt["gasUsed"], execution_gas(h, receipt)
            print(f"{name:22} {used:>9,} {execution:>10,}  {mark:>8}  {ANCHORS[name]}")
        print(f"\n{'contract':22} {'runtime bytes':>13}  of {MAX_RUNTIME_BYTES:,}")
        for name, size in runtime_sizes(h).items():
            print(f"{name:22} {size:>13,}  {size / MAX_RUNTIME_BYTES:.0%}")


if __name__ == "__main__":
    main()
