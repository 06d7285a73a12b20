"""Many loans on a devnet, fast, with the records the platform would hold for them — for the reconciliation benchmark
and its slow test.

Presigned transactions (automine off, sent as raw JSON-RPC batches, mined with ``evm_mine`` until the pool is empty):
the borrowers' approvals, then one ``openLoan`` per loan from the relayer (its offer signed by the quote signer, the
acceptance by the borrower, the risk attestation by the risk signer — as the platform signs them). The signing is the
cost (three EIP-712 signatures and a transaction per loan): it runs in ``workers`` processes, chunk by chunk, and the
calldata is encoded with eth-abi against the function's types read once (web3's ``encode_abi`` looks the function
up in the whole ABI on every call, about 14 ms). Our records: a
borrower per wallet, a credit request per borrower, and for each loan its quote (its offer digest) and the accept
that recorded it, written before the indexer builds the ledger from the chain by its own path (``EventReader`` with
``store.loan_ledger.apply_batch``)."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from eth_abi.abi import encode
from eth_account import Account
from eth_typing import ABIFunction
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from eth_utils.crypto import keccak
from sqlalchemy import insert
from web3 import Web3

from aggregator.indexer import index_to_head
from aggregator.ledger import loan_id_for
from bench.raw_sends import transaction
from chain.artifacts import load_artifact
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
from chain.keccak import use_fast_keccak
from chain.signers import DEVNET_BORROWER_INDEXES, Role, devnet_account, devnet_signer
from contracts.typed_data import (
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
    digest,
    offer_typed_data,
    risk_attestation_typed_data,
)
from store.accept_rows import AcceptRow
from store.aggregator import CreditRequestRow, QuoteRow
from store.api import BorrowerRow
from store.db import Database

USDC, WETH = 10**6, 10**18
CHUNK = 500  # loans signed per task
OPEN_GAS = 900_000
_NONCE_BASE = 2**72  # far from the platform's own offer nonces


@dataclass(frozen=True, slots=True)
class BulkResult:
    chain_name: str
    loans: int
    from_block: int
    to_block: int


def _rpc_batch(url: str, calls: list[tuple[str, list[Any]]], chunk: int = 500) -> list[Any]:
    results: list[Any] = []
    with httpx.Client(timeout=120) as client:
        for start in range(0, len(calls), chunk):
            body = [
                {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
                for n, (method, params) in enumerate(calls[start : start + chunk])
            ]
            answers = sorted(client.post(url, json=body).json(), key=lambda a: a["id"])
            for answer in answers:
                if "error" in answer:
                    raise RuntimeError(f"{answer['error']}")
                results.append(answer["result"])
    return results


def _mine_all(url: str, w3: Web3, sender: str, final_nonce: int) -> None:
    while w3.eth.get_transaction_count(Web3.to_checksum_address(sender)) < final_nonce:
        _rpc_batch(url, [("evm_mine", [])])


def _raw(key: bytes, chain_id: int, nonce: int, to: str, data: str, gas: int) -> str:
    tx = transaction(chain_id, nonce, Web3.to_checksum_address(to), data, gas)
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


@dataclass(frozen=True, slots=True)
class _Loans:
    """What a signing process needs for one chain's loans (plain values: it crosses a process boundary)."""

    chain_id: int
    aggregator: str
    oracle: str
    pool: str
    usdc: str
    weth: str
    now: int
    relayer_nonce: int
    first_nonce: int


def _open_loan_abi() -> tuple[bytes, list[str]]:
    function = cast(
        ABIFunction,
        next(
            item
            for item in load_artifact("CreditAggregator").abi
            if item.get("type") == "function" and item.get("name") == "openLoan"
        ),
    )
    return function_abi_to_4byte_selector(function), get_abi_input_types(function)


def _signed(typed_data_digest: bytes, key: bytes) -> bytes:
    """``r ‖ s ‖ v`` over an EIP-712 digest (as ``contracts.typed_data.sign``, on the digest hashed once)."""
    return bytes(Account.unsafe_sign_hash(typed_data_digest, key).signature)


def _sign_loans(loans: _Loans, start: int, stop: int) -> list[tuple[str, str, str]]:
    """Loans ``start`` .. ``stop``: (the relayer's signed ``openLoan``, the borrower's address, the offer digest)."""
    use_fast_keccak()  # a fresh process hashes on pycryptodome otherwise
    selector, types = _open_loan_abi()
    borrowers = [devnet_account(index) for index in DEVNET_BORROWER_INDEXES]
    relayer_key, quote_key, risk_key = (devnet_account(n).key for n in (1, 2, 3))
    domain = Domain(loans.chain_id, Web3.to_checksum_address(loans.aggregator))
    oracle_domain = Domain(loans.chain_id, Web3.to_checksum_address(loans.oracle))
    signed: list[tuple[str, str, str]] = []
    for n in range(start, stop):
        borrower = borrowers[n % len(borrowers)]
        offer = Offer(
            providerId=keccak(text="pool:usdc"),
            pool=Web3.to_checksum_address(loans.pool),
            borrower=borrower.address,
            asset=Web3.to_checksum_address(loans.usdc),
            principal=1 * USDC,
            rateBps=900,
            term=30 * 86_400,
            originationFee=0,
            collateralAsset=Web3.to_checksum_address(loans.weth),
            collateralAmount=WETH // 1_000,
            chainId=loans.chain_id,
            termsHash=keccak(text=f"disclosure {n}"),
            expiry=loans.now + 86_400,
            nonce=_NONCE_BASE + loans.first_nonce + n,
        )
        attestation = RiskAttestation(
            borrower=borrower.address,
            grade=2,
            maxLtvBps=7_500,
            expiry=loans.now + 86_400,
            decisionHash=keccak(text=f"decision {n}"),
            nonce=offer.nonce,
        )
        acceptance = Acceptance(offer=offer, deadline=offer.expiry)
        offer_digest = digest(offer_typed_data(domain, offer))
        args = (
            acceptance.as_abi_tuple(),
            _signed(offer_digest, quote_key),
            _signed(digest(acceptance_typed_data(domain, acceptance)), borrower.key),
            attestation.as_abi_tuple(),
            _signed(digest(risk_attestation_typed_data(oracle_domain, attestation)), risk_key),
        )
        data = "0x" + (selector + encode(types, args)).hex()
        raw = _raw(relayer_key, loans.chain_id, loans.relayer_nonce + n, loans.aggregator, data, OPEN_GAS)
        signed.append((raw, borrower.address, "0x" + offer_digest.hex()))
    return signed


def open_loans(
    config: ChainConfig,
    record: DeploymentRecord,
    database: Database,
    count: int,
    *,
    first_nonce: int = 0,
    workers: int = 1,
) -> BulkResult:
    """``count`` pool loans of 1 USDC against 0.001 WETH on ``config``'s devnet, and our records of them; the
    transactions are signed in ``workers`` processes (1: in this one)."""
    url = config.rpc_urls[0]
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    chain_id = config.chain_id
    aggregator = record.address("CreditAggregator")
    token = load_artifact("MockERC20").abi
    usdc = w3.eth.contract(address=record.address("USDC"), abi=token)
    weth = w3.eth.contract(address=record.address("WETH"), abi=token)
    pool = record.address("LendingPool:USDC")
    spenders = (aggregator, record.address("CollateralManager"), pool)
    borrowers = [devnet_account(index) for index in DEVNET_BORROWER_INDEXES]
    relayer = devnet_signer(Role.RELAYER)
    from_block = int(w3.eth.block_number) + 1
    loans = _Loans(
        chain_id,
        aggregator,
        record.address("CreditScoringOracle"),
        pool,
        usdc.address,
        weth.address,
        int(w3.eth.get_block("latest")["timestamp"]),
        w3.eth.get_transaction_count(relayer.address),
        first_nonce,
    )
    size = max(50, min(CHUNK, -(-count // (workers * 4))))  # a few chunks per process, so none waits long
    chunks = [(start, min(start + size, count)) for start in range(0, count, size)]
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as signers:
            parts = signers.map(_sign_loans, [loans] * len(chunks), *zip(*chunks, strict=True))
            signed = [loan for part in parts for loan in part]
    else:
        signed = [loan for start, stop in chunks for loan in _sign_loans(loans, start, stop)]

    _rpc_batch(url, [("evm_setAutomine", [False])])
    try:
        approvals = []
        for borrower in borrowers:
            nonce = w3.eth.get_transaction_count(borrower.address)
            for step, (asset, spender) in enumerate((a, s) for a in (usdc, weth) for s in spenders):
                data = asset.encode_abi("approve", [spender, 2**256 - 1])
                approvals.append(
                    (
                        "eth_sendRawTransaction",
                        [_raw(borrower.key, chain_id, nonce + step, asset.address, data, 100_000)],
                    )
                )
        _rpc_batch(url, approvals)
        _rpc_batch(url, [("evm_mine", [])])
        _write_records(database, config, aggregator, [(wallet, offer_digest) for _, wallet, offer_digest in signed])
        _rpc_batch(url, [("eth_sendRawTransaction", [raw]) for raw, _, _ in signed])
        _mine_all(url, w3, relayer.address, loans.relayer_nonce + count)
    finally:
        _rpc_batch(url, [("evm_setAutomine", [True])])
    return BulkResult(config.name, count, from_block, int(w3.eth.block_number))


def _write_records(database: Database, config: ChainConfig, aggregator: str, quotes: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        session = uow.session
        borrower_ids: dict[str, str] = {}
        request_ids: dict[str, str] = {}
        for wallet in sorted({wallet for wallet, _ in quotes}):
            found = session.query(BorrowerRow).filter_by(wallet_address=wallet).one_or_none()
            if found is None:
                found = BorrowerRow(id=str(uuid.uuid4()), wallet_address=wallet, jurisdiction="US-NY", created_at=now)
                session.add(found)
            borrower_ids[wallet] = found.id
            request_ids[wallet] = str(uuid.uuid4())
            session.flush()
            session.add(
                CreditRequestRow(
                    id=request_ids[wallet],
                    borrower_id=found.id,
                    asset="USDC",
                    amount="1",
                    term_days=30,
                    purpose="bench",
                    collateral_asset="WETH",
                    collateral_amount="0.001",
                    preferred_chains=[config.name],
                    status="accepted",
                    risk={},
                    created_at=now,
                )
            )
        session.flush()
        quote_rows, accept_rows = [], []
        for wallet, offer_digest in quotes:
            quote_id = str(uuid.uuid4())
            quote_rows.append(
                {
                    "id": quote_id,
                    "request_id": request_ids[wallet],
                    "borrower_id": borrower_ids[wallet],
                    "provider_id": "pool:usdc",
                    "kind": "pool",
                    "chain_name": config.name,
                    "chain_id": config.chain_id,
                    "contract": aggregator,
                    "rank": 1,
                    "offer": {},
                    "offer_digest": offer_digest,
                    "offer_signature": "0x",
                    "attestation": {},
                    "attestation_signature": "0x",
                    "disclosure": {},
                    "status": "accepted",
                    "expires_at": now + timedelta(days=1),
                    "created_at": now,
                }
            )
            accept_rows.append(
                {
                    "quote_id": quote_id,
                    "request_id": request_ids[wallet],
                    "borrower_id": borrower_ids[wallet],
                    "kind": "pool",
                    "chain_name": config.name,
                    "attempt": 1,
                    "step": "recorded",
                    "owner": "bench",
                    "lease_until": now,
                    "updated_at": now,
                    "loan_id": loan_id_for(config.chain_id, aggregator, offer_digest),
                }
            )
        session.execute(insert(QuoteRow), quote_rows)
        session.execute(insert(AcceptRow), accept_rows)
        uow.commit()


async def index_ledger(config: ChainConfig, record: DeploymentRecord, database: Database, from_block: int) -> None:
    """The ledger of the chain from ``from_block`` to its head, by the indexer's own path."""
    await index_to_head(config, record, database, from_block, reader=f"bulk-{uuid.uuid4().hex[:6]}")
