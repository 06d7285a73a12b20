"""Accepted loans per second, end to end through the API processes, against raw presigned ``openLoan`` transactions
to the same devnet (``bench/scale.py``'s third measure).

End to end: fresh borrowers (gas, WETH minted, the aggregator approved for the collateral), each onboarded through the
API and holding one pool quote on the chain; then every borrower accepts its quote at once, spread over the API
processes, and the clock stops at the last answer (an accept answers 201 once ``openLoan`` is mined and recorded).
Raw: the same number of ``openLoan`` transactions — the offer, the acceptance and the risk attestation signed
beforehand by the same devnet keys the platform uses — sent at once from the relayer to the same devnet, and the
clock stops when the last receipt is in. Raw runs after the API's accepts, so the two never share the relayer's
nonces."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from api.demo import onboard
from api.wallet import sign_acceptance
from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account
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
AMOUNT = "100.00"
COLLATERAL = WETH // 10  # 0.1 WETH against 100 USDC
LOAN_REQUEST = {"amount": AMOUNT, "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "0.1"}}
OPEN_GAS = 900_000
QUOTE_ATTEMPTS = 5
MAX_FEE = 50 * 10**9


@dataclass(frozen=True, slots=True)
class LoansResult:
    loans: int
    accepted: int
    statuses: dict[str, int]
    api_seconds: float
    api_loans_per_second: float
    raw_seconds: float
    raw_loans_per_second: float
    ratio: float


@dataclass(frozen=True, slots=True)
class Borrower:
    account: LocalAccount
    key: str
    quote: dict[str, Any]


def _send(w3: Web3, account: LocalAccount, call: Any) -> None:
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)
    if w3.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
        raise RuntimeError(f"setting up a borrower failed: {tx_hash.hex()}")


def _funded(rpc_url: str, record: DeploymentRecord) -> LocalAccount:
    """A fresh wallet with gas and 1 WETH, the aggregator approved to take its collateral."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    weth = w3.eth.contract(address=record.address("WETH"), abi=load_artifact("MockERC20").abi)
    account: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(WETH)])  # type: ignore[arg-type]
    _send(w3, account, weth.functions.mint(account.address, WETH))
    _send(w3, account, weth.functions.approve(record.address("CreditAggregator"), 2**256 - 1))
    return account


def _quoted(api_url: str, admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str) -> Borrower:
    account = _funded(rpc_url, record)
    key = onboard(api_url, admin_key, account.address)
    for _ in range(QUOTE_ATTEMPTS):  # a busy machine can make every provider miss the fan-out deadline
        response = httpx.post(
            f"{api_url}/v1/credit-requests",
            json=LOAN_REQUEST | {"preferred_chains": [chain]},
            headers={"X-API-Key": key},
            timeout=120,
        )
        if response.status_code != 201:
            raise RuntimeError(f"credit request refused: {response.text}")
        pool = [q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == chain]
        if pool:
            return Borrower(account, key, pool[0])
    raise RuntimeError(f"no pool quote on {chain} in {QUOTE_ATTEMPTS} requests: {response.text}")


def prepare(
    api_urls: list[str], admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str, count: int
) -> list[Borrower]:
    """``count`` borrowers, each holding one pool quote on ``chain`` (set up through the API processes in turn)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(
            pool.map(
                lambda n: _quoted(api_urls[n % len(api_urls)], admin_key, rpc_url, record, chain),
                range(count),
            )
        )


async def _accept_all(api_urls: list[str], borrowers: list[Borrower]) -> tuple[float, dict[str, int]]:
    bodies = [{"signature": sign_acceptance(b.account, b.quote["acceptance_typed_data"])} for b in borrowers]
    limits = httpx.Limits(max_connections=len(borrowers), max_keepalive_connections=len(borrowers))
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{api_urls[n % len(api_urls)]}/v1/quotes/{b.quote['id']}/accept",
                    json=body,
                    headers={"X-API-Key": b.key},
                )
                for n, (b, body) in enumerate(zip(borrowers, bodies, strict=True))
            )
        )
        elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
    return elapsed, statuses


def _presigned_opens(rpc_url: str, record: DeploymentRecord, count: int) -> list[str]:
    """``count`` raw ``openLoan`` transactions from the relayer, signed now (not timed)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    chain_id = int(w3.eth.chain_id)
    aggregator = w3.eth.contract(address=record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi)
    domain = Domain(chain_id, aggregator.address)
    oracle_domain = Domain(chain_id, record.address("CreditScoringOracle"))
    quote_key = devnet_account(DEVNET_ROLE_INDEX[Role.QUOTE_SIGNER]).key
    risk_key = devnet_account(DEVNET_ROLE_INDEX[Role.RISK_SIGNER]).key
    relayer = devnet_account(DEVNET_ROLE_INDEX[Role.RELAYER])
    first = w3.eth.get_transaction_count(relayer.address)
    now = int(w3.eth.get_block("latest")["timestamp"])
    raws = []
    for n in range(count):
        borrower = _funded(rpc_url, record)
        offer = Offer(
            providerId=keccak(text="pool:usdc"),
            pool=record.address("LendingPool:USDC"),
            borrower=borrower.address,
            asset=record.address("USDC"),
            principal=100 * USDC,
            rateBps=900,
            term=30 * 86_400,
            originationFee=0,
            collateralAsset=record.address("WETH"),
            collateralAmount=COLLATERAL,
            chainId=chain_id,
            termsHash=keccak(text=f"bench scale disclosure {n}"),
            expiry=now + 86_400,
            nonce=2**80 + n,  # far from the platform's own offer nonces
        )
        attestation = RiskAttestation(
            borrower=borrower.address,
            grade=2,
            maxLtvBps=7_500,
            expiry=now + 86_400,
            decisionHash=keccak(text=f"bench scale decision {n}"),
            nonce=offer.nonce,
        )
        acceptance = Acceptance(offer=offer, deadline=offer.expiry)
        data = aggregator.encode_abi(
            "openLoan",
            [
                acceptance.as_abi_tuple(),
                sign(offer_typed_data(domain, offer), quote_key),
                sign(acceptance_typed_data(domain, acceptance), borrower.key),
                attestation.as_abi_tuple(),
                sign(risk_attestation_typed_data(oracle_domain, attestation), risk_key),
            ],
        )
        tx = {
            "chainId": chain_id,
            "nonce": first + n,
            "to": aggregator.address,
            "data": data,
            "value": 0,
            "gas": OPEN_GAS,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }
        raws.append("0x" + bytes(relayer.sign_transaction(tx).raw_transaction).hex())
    return raws


async def _send_raw(rpc_url: str, raws: list[str]) -> float:
    async with httpx.AsyncClient(timeout=120) as client:

        async def rpc(method: str, params: list[Any]) -> Any:
            answer = (
                await client.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            ).json()
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            return answer["result"]

        started = time.perf_counter()
        pending = set(await asyncio.gather(*(rpc("eth_sendRawTransaction", [raw]) for raw in raws)))
        while pending:
            receipts = await asyncio.gather(*(rpc("eth_getTransactionReceipt", [h]) for h in pending))
            failed = [r["transactionHash"] for r in receipts if r is not None and r["status"] != "0x1"]
            if failed:
                raise RuntimeError(f"raw openLoan reverted: {failed[:3]}")
            pending = {h for h, r in zip(list(pending), receipts, strict=True) if r is None}
            await asyncio.sleep(0.01)
        return time.perf_counter() - started


def measure(api_urls: list[str], borrowers: list[Borrower], rpc_url: str, record: DeploymentRecord) -> LoansResult:
    api_seconds, statuses = asyncio.run(_accept_all(api_urls, borrowers))
    accepted = statuses.get("201", 0)
    raws = _presigned_opens(rpc_url, record, len(borrowers))
    raw_seconds = asyncio.run(_send_raw(rpc_url, raws))
    api_rate, raw_rate = accepted / api_seconds, len(raws) / raw_seconds
    return LoansResult(
        loans=len(borrowers),
        accepted=accepted,
        statuses=statuses,
        api_seconds=round(api_seconds, 2),
        api_loans_per_second=round(api_rate, 2),
        raw_seconds=round(raw_seconds, 2),
        raw_loans_per_second=round(raw_rate, 2),
        ratio=round(api_rate / raw_rate, 3),
    )
