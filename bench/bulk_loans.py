"""Many loans on a devnet, fast, with the records the platform would hold for them — for the reconciliation benchmark
and its slow test.

Presigned transactions (automine off, sent as raw JSON-RPC batches, mined with ``evm_mine`` until the pool is empty):
the borrowers' approvals, then one ``openLoan`` per loan from the relayer (its offer signed by the quote signer, the
acceptance by the borrower, the risk attestation by the risk signer — as the platform signs them). Our records: a
borrower per wallet, a credit request per borrower, and for each loan its quote (its offer digest) and the accept
that recorded it, written before the indexer builds the ledger from the chain by its own path (``EventReader`` with
``aggregator.ledger.apply_batch``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from eth_account import Account
from eth_utils.crypto import keccak
from sqlalchemy import insert
from web3 import Web3

from aggregator.indexer import index_to_head
from aggregator.ledger import loan_id_for
from chain.artifacts import load_artifact
from chain.config import ChainConfig
from chain.deployment import DeploymentRecord
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
    sign,
)
from store.accepts import AcceptRow
from store.aggregator import CreditRequestRow, QuoteRow
from store.api import BorrowerRow
from store.db import Database

USDC, WETH = 10**6, 10**18
OPEN_GAS = 900_000
MAX_FEE = 50 * 10**9
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
    tx = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": Web3.to_checksum_address(to),
        "data": data,
        "value": 0,
        "gas": gas,
        "maxFeePerGas": MAX_FEE,
        "maxPriorityFeePerGas": 10**9,
        "type": 2,
    }
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


def open_loans(
    config: ChainConfig, record: DeploymentRecord, database: Database, count: int, *, first_nonce: int = 0
) -> BulkResult:
    """``count`` pool loans of 1 USDC against 0.001 WETH on ``config``'s devnet, and our records of them."""
    url = config.rpc_urls[0]
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    chain_id = config.chain_id
    aggregator = w3.eth.contract(address=record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi)
    token = load_artifact("MockERC20").abi
    usdc = w3.eth.contract(address=record.address("USDC"), abi=token)
    weth = w3.eth.contract(address=record.address("WETH"), abi=token)
    pool = record.address("LendingPool:USDC")
    spenders = (aggregator.address, record.address("CollateralManager"), pool)
    borrowers = [devnet_account(index) for index in DEVNET_BORROWER_INDEXES]
    relayer = devnet_signer(Role.RELAYER)
    relayer_key = devnet_account(1).key
    quote_key, risk_key = devnet_account(2).key, devnet_account(3).key
    domain = Domain(chain_id, aggregator.address)
    oracle_domain = Domain(chain_id, record.address("CreditScoringOracle"))
    now = int(w3.eth.get_block("latest")["timestamp"])
    from_block = int(w3.eth.block_number) + 1

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

        relayer_nonce = w3.eth.get_transaction_count(relayer.address)
        sends: list[tuple[str, list[Any]]] = []
        quotes: list[tuple[str, str]] = []
        for n in range(count):
            borrower = borrowers[n % len(borrowers)]
            offer = Offer(
                providerId=keccak(text="pool:usdc"),
                pool=pool,
                borrower=borrower.address,
                asset=usdc.address,
                principal=1 * USDC,
                rateBps=900,
                term=30 * 86_400,
                originationFee=0,
                collateralAsset=weth.address,
                collateralAmount=WETH // 1_000,
                chainId=chain_id,
                termsHash=keccak(text=f"disclosure {n}"),
                expiry=now + 86_400,
                nonce=_NONCE_BASE + first_nonce + n,
            )
            attestation = RiskAttestation(
                borrower=borrower.address,
                grade=2,
                maxLtvBps=7_500,
                expiry=now + 86_400,
                decisionHash=keccak(text=f"decision {n}"),
                nonce=offer.nonce,
            )
            acceptance = Acceptance(offer=offer, deadline=offer.expiry)
            args = (
                acceptance.as_abi_tuple(),
                sign(offer_typed_data(domain, offer), quote_key),
                sign(acceptance_typed_data(domain, acceptance), borrower.key),
                attestation.as_abi_tuple(),
                sign(risk_attestation_typed_data(oracle_domain, attestation), risk_key),
            )
            data = aggregator.encode_abi("openLoan", list(args))
            sends.append(
                (
                    "eth_sendRawTransaction",
                    [_raw(relayer_key, chain_id, relayer_nonce + n, aggregator.address, data, OPEN_GAS)],
                )
            )
            quotes.append((borrower.address, "0x" + digest(offer_typed_data(domain, offer)).hex()))
        _write_records(database, config, aggregator.address, quotes)
        _rpc_batch(url, sends)
        _mine_all(url, w3, relayer.address, relayer_nonce + count)
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
