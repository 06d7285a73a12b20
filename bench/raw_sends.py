"""The raw side of ``bench/scale_loans.py``: presigned ``openLoan`` transactions sent to a devnet in batches, timed from
the first ``eth_sendRawTransaction`` to the last receipt, from a relayer of their own (``RawSender``), with the
platform's processes paused meanwhile (``paused``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from bench.meters import Meters, cpu_total, settle
from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account
from contracts.deploy import RELAYER_ROLE
from contracts.typed_data import (
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
    offer_typed_data,
    risk_attestation_typed_data,
    sign,
)

USDC, WETH = 10**6, 10**18
COLLATERAL = WETH // 10  # 0.1 WETH against 100 USDC
OPEN_GAS = 900_000
FUND_GAS = 150_000
#: a sent transaction without its receipt after this long was dropped: the bench stops, naming it
MINED_WITHIN_SECONDS = 120.0
#: a wait whose devnet mined nothing this long, with a ready transaction in its pool, mines a block (``_Stall``)
STALL_SECONDS = 1.0
RAW_WETH = 100 * WETH  # a raw borrower's collateral for up to 1,000 loans
MAX_FEE = 50 * 10**9


class _Rpc:
    """JSON-RPC over one pooled ``aiohttp.ClientSession`` (the raw sends' client: aiohttp, as the platform's chain
    client, whose requests cost a fraction of httpx's CPU)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session, self._url = session, url

    async def __call__(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self._session.post(self._url, json=body) as response:
            answer = await response.json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def mined(self, hashes: list[str], what: str) -> None:
        """Until every one of ``hashes`` has its receipt (polled every 10 ms); RuntimeError when one reverted, or when
        one has none after :data:`MINED_WITHIN_SECONDS` (dropped by the node)."""
        pending = set(hashes)
        deadline, stall = time.monotonic() + MINED_WITHIN_SECONDS, _Stall()
        while pending:
            _before(deadline, what, len(pending))
            ordered = list(pending)
            receipts = await asyncio.gather(*(self("eth_getTransactionReceipt", [h]) for h in ordered))
            failed = [r["transactionHash"] for r in receipts if r is not None and r["status"] != "0x1"]
            if failed:
                raise RuntimeError(f"{what} reverted: {failed[:3]}")
            pending = {h for h, r in zip(ordered, receipts, strict=True) if r is None}
            if pending:
                await stall.nudge(self)
                await asyncio.sleep(0.01)

    async def send_all(self, raws: list[str]) -> list[str]:
        return list(await asyncio.gather(*(self("eth_sendRawTransaction", [raw]) for raw in raws)))

    async def last_mined(self, hashes: list[str]) -> None:
        """Until the receipt of the last of ``hashes`` is in (polled every 2 ms): sent by one account with
        consecutive nonces, the others are mined by then (one small request a poll)."""
        deadline, stall = time.monotonic() + MINED_WITHIN_SECONDS, _Stall()
        while await self("eth_getTransactionReceipt", [hashes[-1]]) is None:
            _before(deadline, "the last raw openLoan", 1)
            await stall.nudge(self)
            await asyncio.sleep(0.002)


class _Stall:
    """anvil's automine can leave a ready transaction in its pool when a full block left it out, mining it only when
    another transaction arrives (foundry-rs/foundry#10122; seen with anvil 1.7.1 here: 199 of 200 presigned
    900k-gas sends mined, the last for good). With the platform's processes paused nothing else arrives, so a wait
    whose devnet mined no block for :data:`STALL_SECONDS` while its pool holds a pending transaction mines one block
    (``evm_mine``) — what any later send would have triggered, and what a chain with a block time does by itself."""

    def __init__(self) -> None:
        self.block, self.since = -1, time.monotonic()

    async def nudge(self, rpc: _Rpc) -> None:
        now = time.monotonic()
        if now - self.since < STALL_SECONDS:
            return
        block = int(await rpc("eth_blockNumber", []), 16)
        if block != self.block:
            self.block, self.since = block, now
            return
        if int((await rpc("txpool_status", []))["pending"], 16):
            print(f"  anvil left a ready transaction unmined at block {block}: one evm_mine", flush=True)
            await rpc("evm_mine", [])
        self.since = now


def _before(deadline: float, what: str, pending: int) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"{what}: {pending} transaction(s) without a receipt after {MINED_WITHIN_SECONDS:.0f} s")


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=120)
    )


def _raw(signed: Any) -> str:
    return "0x" + bytes(signed.raw_transaction).hex()


def transaction(chain_id: int, nonce: int, to: str, data: str, gas: int) -> dict[str, Any]:
    """An EIP-1559 transaction of ``gas`` to ``to`` with ``data`` and no value, at a fee any devnet block takes."""
    return {
        "chainId": chain_id,
        "nonce": nonce,
        "to": to,
        "data": data,
        "value": 0,
        "gas": gas,
        "maxFeePerGas": MAX_FEE,
        "maxPriorityFeePerGas": 10**9,
        "type": 2,
    }


class RawSender:
    """The raw side: batches of ``openLoan`` transactions, each signed beforehand (not timed) and sent at once, timed
    from the first ``eth_sendRawTransaction`` to the last receipt.

    They come from a sender of their own (a fresh account granted ``RELAYER_ROLE`` through the Timelock, impersonated:
    a devnet only), so raw batches and the platform's accepts can alternate without sharing the relayer's nonces.
    A batch's loans have one borrower each (gas, WETH minted, the aggregator approved: funded in bulk at the first
    batch, not timed, and used again by the later batches), an offer signed by the platform's quote signer, the
    borrower's acceptance and a risk attestation signed by the platform's risk signer: the same call, checks and
    transfers as an accepted pool quote's ``openLoan``."""

    def __init__(self, rpc_url: str, record: DeploymentRecord) -> None:
        self.rpc_url = rpc_url
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.chain_id = int(w3.eth.chain_id)
        self.record = record
        self.aggregator = w3.eth.contract(
            address=record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi
        )
        self.weth = w3.eth.contract(address=record.address("WETH"), abi=load_artifact("MockERC20").abi)
        self.domain = Domain(self.chain_id, self.aggregator.address)
        self.oracle_domain = Domain(self.chain_id, record.address("CreditScoringOracle"))
        self.quote_key = devnet_account(DEVNET_ROLE_INDEX[Role.QUOTE_SIGNER]).key
        self.risk_key = devnet_account(DEVNET_ROLE_INDEX[Role.RISK_SIGNER]).key
        self.sender: LocalAccount = Account.create()
        self.nonce = 0
        self.sent = 0
        self.borrowers: list[LocalAccount] = []
        self.offer_base = 2**80 + (int.from_bytes(bytes.fromhex(self.sender.address[2:18]), "big") << 24)
        asyncio.run(self._grant_relayer())

    async def _grant_relayer(self) -> None:
        async with _session(1) as session:
            rpc = _Rpc(session, self.rpc_url)
            timelock = self.record.address("Timelock")
            await rpc("anvil_setBalance", [self.sender.address, hex(10**22)])
            await rpc("anvil_impersonateAccount", [timelock])
            await rpc("anvil_setBalance", [timelock, hex(10**20)])
            data = self.aggregator.encode_abi("grantRole", [RELAYER_ROLE, self.sender.address])
            tx_hash = await rpc(
                "eth_sendTransaction", [{"from": timelock, "to": self.aggregator.address, "data": data}]
            )
            await rpc.mined([tx_hash], "granting the raw sender RELAYER_ROLE")
            await rpc("anvil_stopImpersonatingAccount", [timelock])

    async def _borrowers(self, rpc: _Rpc, count: int) -> list[LocalAccount]:
        """``count`` borrowers with gas and ``RAW_WETH``, the aggregator approved (two presigned sends each), made
        at the first batch and used again by the later ones: anvil 1.7's work per mined block grows with its state
        (it rebuilds the whole state trie per block), so fresh accounts for every raw send would slow the devnet
        run by run for both sides."""
        if len(self.borrowers) >= count:
            return self.borrowers[:count]
        accounts: list[LocalAccount] = [Account.create() for _ in range(count - len(self.borrowers))]
        await asyncio.gather(*(rpc("anvil_setBalance", [a.address, hex(WETH)]) for a in accounts))
        raws = []
        for account in accounts:
            mint = self.weth.encode_abi("mint", [account.address, RAW_WETH])
            approve = self.weth.encode_abi("approve", [self.aggregator.address, 2**256 - 1])
            raws.append(
                _raw(account.sign_transaction(transaction(self.chain_id, 0, self.weth.address, mint, FUND_GAS)))
            )
            raws.append(
                _raw(account.sign_transaction(transaction(self.chain_id, 1, self.weth.address, approve, FUND_GAS)))
            )
        await rpc.mined(await rpc.send_all(raws), "funding a raw borrower")
        self.borrowers += accounts
        return self.borrowers[:count]

    def _open(self, borrower: LocalAccount, now: int) -> str:
        offer = Offer(
            providerId=keccak(text="pool:usdc"),
            pool=self.record.address("LendingPool:USDC"),
            borrower=borrower.address,
            asset=self.record.address("USDC"),
            principal=100 * USDC,
            rateBps=900,
            term=30 * 86_400,
            originationFee=0,
            collateralAsset=self.record.address("WETH"),
            collateralAmount=COLLATERAL,
            chainId=self.chain_id,
            termsHash=keccak(text=f"bench scale disclosure {self.sent}"),
            expiry=now + 86_400,
            nonce=self.offer_base + self.sent,  # far from the platform's own offer nonces, new for every send
        )
        attestation = RiskAttestation(
            borrower=borrower.address,
            grade=2,
            maxLtvBps=7_500,
            expiry=now + 86_400,
            decisionHash=keccak(text=f"bench scale decision {self.sent}"),
            nonce=offer.nonce,
        )
        acceptance = Acceptance(offer=offer, deadline=offer.expiry)
        data = self.aggregator.encode_abi(
            "openLoan",
            [
                acceptance.as_abi_tuple(),
                sign(offer_typed_data(self.domain, offer), self.quote_key),
                sign(acceptance_typed_data(self.domain, acceptance), borrower.key),
                attestation.as_abi_tuple(),
                sign(risk_attestation_typed_data(self.oracle_domain, attestation), self.risk_key),
            ],
        )
        signed = self.sender.sign_transaction(
            transaction(self.chain_id, self.nonce, self.aggregator.address, data, OPEN_GAS)
        )
        self.nonce += 1
        self.sent += 1
        return _raw(signed)

    def batch(self, count: int, meters: Meters | None) -> tuple[float, float, float]:
        """One batch: ``count`` raw ``openLoan`` sends at once. Seconds from the first send to the last receipt,
        this process's CPU seconds and anvil's meanwhile (the borrowers' funding and every signature come before,
        untimed, and the machine is let settle after them)."""
        return asyncio.run(self._batch(count, meters))

    async def _batch(self, count: int, meters: Meters | None) -> tuple[float, float, float]:
        async with _session(count) as session:
            rpc = _Rpc(session, self.rpc_url)
            borrowers = await self._borrowers(rpc, count)
            now = int((await rpc("eth_getBlockByNumber", ["latest", False]))["timestamp"], 16)
            raws = [self._open(borrower, now) for borrower in borrowers]
            await asyncio.to_thread(settle, meters)  # the platform's watchers have seen the funding's blocks
            anvil = [meters.anvil] if meters is not None and meters.anvil is not None else []
            with paused(list(meters.api.values()) if meters is not None else []):
                started, cpu, anvil_cpu = time.perf_counter(), time.process_time(), cpu_total(anvil)
                hashes = await rpc.send_all(raws)
                await rpc.last_mined(hashes)
                timed = time.perf_counter() - started, time.process_time() - cpu, cpu_total(anvil) - anvil_cpu
            await rpc.mined(hashes, "raw openLoan")  # every one succeeded (checked once the clock has stopped)
            return timed


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """The API processes (and the balancer) stopped (SIGSTOP) while the block runs, then continued: the raw sends
    have the devnet and the machine to themselves, without the platform's watchers and indexer reading each block
    they mine (a pause of a fraction of a second, far inside every lease)."""
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
