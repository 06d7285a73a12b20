"""A separate process that sends mints through the lifecycle: two of them share one PostgreSQL nonce counter, or
one is killed between signing and confirmation (``--kill-after-signing``).

    python -m tests.integration.chain.worker DB_URL RPC_URL CHAIN_ID TOKEN PREFIX COUNT [--kill-after-signing KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from sqlalchemy.orm import sessionmaker
from web3 import Web3

from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.signers import Role, devnet_signer
from chain.transactions import Call, LifecycleSettings, TransactionManager
from store.chain import SqlChainStore
from store.db import make_engine
from tests.integration.chain.support import holder


async def main(args: argparse.Namespace) -> None:
    engine = make_engine(args.db)
    store = SqlChainStore(sessionmaker(engine, expire_on_commit=False))
    client = ChainClient(ChainConfig(name="worker-chain", chain_id=args.chain_id, rpc_urls=[args.rpc]))
    token = Web3().eth.contract(address=args.token, abi=load_artifact("MockERC20").abi)

    async def on_signed(key: str) -> None:
        if key == args.kill_after_signing:
            await asyncio.sleep(0.5)  # let the other intents be sent
            os.kill(os.getpid(), signal.SIGKILL)

    # a short lease: a killed worker's intents are taken over 5 s after its last renewal
    settings = LifecycleSettings(confirmations=1, poll_interval=0.05, stuck_after=60.0, claim_after=5.0)
    txs = TransactionManager(client, devnet_signer(Role.DEPLOYER), store, settings=settings, on_signed=on_signed)
    async with txs:
        keys = [f"{args.prefix}:{i}" for i in range(args.count)]
        await asyncio.gather(
            *(txs.submit(key, Call.function(token, "mint", holder(i), 1, gas=90_000)) for i, key in enumerate(keys))
        )
        receipts = await asyncio.gather(*(txs.wait(key, within=120) for key in keys))
    print(json.dumps({"nonces": [r.nonce for r in receipts]}))
    await client.close()
    engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("db", "rpc"):
        parser.add_argument(name)
    parser.add_argument("chain_id", type=int)
    parser.add_argument("token")
    parser.add_argument("prefix")
    parser.add_argument("count", type=int)
    parser.add_argument("--kill-after-signing", default=None)
    asyncio.run(main(parser.parse_args()))
