"""A separate process that deploys a token and mints through ``Deployer``, killed (SIGKILL) right after the intent
``--kill-after-signing`` is signed and persisted, before it is broadcast; or left to be killed by the test.

    python -m tests.integration.chain.deploy_worker RPC_URL RECORD_PATH [--kill-after-signing KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from web3 import Web3

from chain.deployment import Deployer, DeploymentRecord
from chain.signers import Role, devnet_signer

TOKEN_ARGS = ("Devnet Token", "TKN", 18)
MINT_TO = "0x0000000000000000000000000000000000000001"


def deploy(deployer: Deployer) -> None:
    """The recipe both the worker and the test's re-run follow."""
    deployer.deploy("Token", "MockERC20", *TOKEN_ARGS)
    deployer.step("mint", "Token", "mint", Web3.to_checksum_address(MINT_TO), 10**18)


def main(args: argparse.Namespace) -> None:
    async def on_signed(key: str) -> None:
        if key == args.kill_after_signing:
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(0)

    w3 = Web3(Web3.HTTPProvider(args.rpc))
    path = Path(args.record)
    record = DeploymentRecord(chain_name="ethereum-local", chain_id=w3.eth.chain_id, profile="devnet")
    with Deployer(w3, devnet_signer(Role.DEPLOYER), record, path, on_signed=on_signed) as deployer:
        print(deployer.intents_path, flush=True)
        deploy(deployer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("rpc")
    parser.add_argument("record")
    parser.add_argument("--kill-after-signing", default=None)
    main(parser.parse_args())
