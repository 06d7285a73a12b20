"""A LendingPool deployed after the contract set (to be registered through governance) and deposits into it, on a
devnet through ``tests.contracts.harness.Harness``."""

from __future__ import annotations

from typing import Any

from chain.artifacts import load_artifact
from tests.contracts.harness import DEPLOYER, Harness


def deploy_pool(h: Harness, admin: str = DEPLOYER.address) -> Any:
    """A second USDC LendingPool naming the CreditAggregator, administered by ``admin``, not yet registered."""
    params = h.chain.record.parameters
    model = params["rateModel"]
    artifact = load_artifact("LendingPool")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(
        h.usdc.address,
        "creditmesh USDC pool 2",
        "cmUSDC2",
        admin,
        h.aggregator.address,
        model["baseBps"],
        model["slope1Bps"],
        model["slope2Bps"],
        model["optimalUtilizationBps"],
        params["reserveFactorBps"],
        params["sharesDecimalsOffset"],
    ).transact({"from": DEPLOYER.address})
    address = h.w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
    return h.w3.eth.contract(address=address, abi=artifact.abi)


def deposit(h: Harness, pool: Any, amount: int) -> str:
    """``amount`` (USDC base units) deposited into ``pool`` by the deployer; the transaction's hash."""
    h.fund(DEPLOYER.address, usdc=amount)
    h.send(h.usdc.functions.approve(pool.address, amount), DEPLOYER)
    receipt = h.send(pool.functions.deposit(amount, DEPLOYER.address), DEPLOYER)
    return str(receipt["transactionHash"].to_0x_hex())
