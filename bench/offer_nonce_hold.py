"""How long a credit request's write holds the offer-nonce counter rows on PostgreSQL, and what that costs concurrent
writes: the write (reserve the nonces, sign the quotes and attestations, INSERT the request's rows, commit) by
ten writer threads of one process, the old order against the new, interleaved rounds on one PostgreSQL.

- before: the nonces reserved inside the write's transaction (``UPDATE … RETURNING``), so the counter rows stay
  locked while the offers are signed and the rows written, until the commit;
- after: ``QuotingStore.writing`` — on PostgreSQL the nonces reserved and committed on their own first.

Printed per variant: writes/s, p50/p90 of a write, and how long the counter rows were held, measured the same way
for both on the connection (SQLAlchemy events): from the return of the ``UPDATE offer_nonces … RETURNING`` to the
start of that transaction's COMMIT (the row is locked a little longer: the UPDATE's own run and the COMMIT's round
trip). In one process that time includes the wait for the GIL between the two statements. The quoted request
written each time is one the quoting service made (real compliance, signers and disclosures, in-process lenders:
``tests.support.quoting``), given new ids; its offers and attestations are signed again with each write's nonces.

    uv run --frozen --no-sync python -m bench.offer_nonce_hold [--writers 10] [--writes 40] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import Connection, Engine, event

from aggregator.offers import attestation_from_row, offer_from_row
from aggregator.quote_store import InMemoryQuotingStore, OfferNonceKey, QuotedRequest, QuoteRecord
from compliance import ComplianceService, DecisionRecord
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import AddressList, ListVersion, NameList
from compliance.sanctions.screening import SanctionsScreen
from contracts.typed_data import Domain, offer_typed_data, risk_attestation_typed_data
from risk.repository import StoredDecision
from store.api import BorrowerRow
from store.base import Base
from store.db import Database
from store.quoting import SqlQuotingStore, SqlQuotingUnitOfWork
from tests.support.quoting import QUOTE_SIGNER, RISK_SIGNER, SPEC, WALLET, borrower_file, quoting_service
from tests.support.services import fresh_schema, postgres_server

Written = tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]


def _written() -> Written:
    version = ListVersion("bench", datetime(2026, 11, 1, tzinfo=UTC), "bench.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    compliance = ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))
    store = InMemoryQuotingStore()
    quoted = asyncio.run(quoting_service(store, compliance).request_credit(borrower_file(), SPEC))
    return quoted, store.tables.risk_decisions[0], store.tables.decision_records


def _keys(quoted: QuotedRequest) -> dict[int, OfferNonceKey]:
    return {q.chain_id: OfferNonceKey(q.chain_id, q.contract, QUOTE_SIGNER.address) for q in quoted.quotes}


def _fresh(written: Written) -> Written:
    """The request with new ids, its decision records hashed (as the service does before the write)."""
    quoted, decision, records = written
    request_id = str(uuid.uuid4())
    fresh = [replace(record, decision_id=str(uuid.uuid4())) for record in records]
    for record in fresh:
        record.record_hash()
    request = replace(quoted.request, id=request_id)
    stored = replace(decision, id=str(uuid.uuid4()), request_id=request_id)
    return QuotedRequest(request, quoted.outcomes, quoted.quotes), stored, fresh


def _signed(written: Written, nonces: dict[int, int]) -> Written:
    """The request's offers and attestations signed again with ``nonces`` (by chain id), the quotes given new ids."""
    quoted, decision, records = written
    request_id = quoted.request.id
    attestations: dict[int, tuple[dict[str, Any], str]] = {}
    quotes: list[QuoteRecord] = []
    for quote in quoted.quotes:
        nonce, domain = nonces[quote.chain_id], Domain(quote.chain_id, to_checksum_address(quote.contract))
        stored_nonce = type(quote.offer["nonce"])(nonce)
        if quote.chain_id not in attestations:
            attested = replace(attestation_from_row(quote), nonce=nonce)
            attested_signature = RISK_SIGNER.sign_typed_data(risk_attestation_typed_data(domain, attested))
            attestations[quote.chain_id] = (
                {**quote.attestation, "nonce": stored_nonce},
                "0x" + attested_signature.hex(),
            )
        offer = replace(offer_from_row(quote), nonce=nonce)
        digest, signature = QUOTE_SIGNER.sign_typed_data_with_digest(offer_typed_data(domain, offer))
        attestation, attestation_signature = attestations[quote.chain_id]
        quotes.append(
            replace(
                quote,
                id=str(uuid.uuid4()),
                request_id=request_id,
                offer={**quote.offer, "nonce": stored_nonce},
                offer_digest="0x" + digest.hex(),
                offer_signature="0x" + signature.hex(),
                attestation=attestation,
                attestation_signature=attestation_signature,
            )
        )
    return QuotedRequest(quoted.request, quoted.outcomes, quotes), decision, records


HELD: list[float] = []  # seconds from an UPDATE of the counters to its transaction's COMMIT (appends are atomic)


def _instrument(engine: Engine) -> None:
    @event.listens_for(engine, "after_cursor_execute")
    def locked(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE offer_nonces"):
            conn.info["counters_locked_at"] = time.perf_counter()

    @event.listens_for(engine, "commit")
    def released(conn: Connection) -> None:
        locked_at = conn.info.pop("counters_locked_at", None)
        if locked_at is not None:
            HELD.append(time.perf_counter() - locked_at)

    @event.listens_for(engine, "rollback")
    def forgotten(conn: Connection) -> None:
        conn.info.pop("counters_locked_at", None)


class Sample:
    def __init__(self) -> None:
        self.writes: list[float] = []
        self.held: list[float] = []


def _before(store: SqlQuotingStore, written: Written, writes: list[float]) -> None:
    """The old order: the nonces reserved inside the write's transaction."""
    keys, written = _keys(written[0]), _fresh(written)
    start = time.perf_counter()
    with store.unit_of_work() as uow:
        reserved = uow.quoting.reserve_offer_nonces(keys.values())
        _store(uow, _signed(written, {chain: reserved[key] for chain, key in keys.items()}))
    writes.append(time.perf_counter() - start)


def _after(store: SqlQuotingStore, written: Written, writes: list[float]) -> None:
    keys, written = _keys(written[0]), _fresh(written)
    start = time.perf_counter()
    with store.writing(keys.values()) as (uow, reserved):
        _store(uow, _signed(written, {chain: reserved[key] for chain, key in keys.items()}))
    writes.append(time.perf_counter() - start)


def _store(uow: SqlQuotingUnitOfWork, signed: Written) -> None:
    uow.quoting.add_quoted(*signed)
    uow.commit()


def _round(
    write: Callable[[SqlQuotingStore, Written, list[float]], None],
    store: SqlQuotingStore,
    written: Written,
    writers: int,
    writes: int,
) -> tuple[float, Sample]:
    sample, barrier = Sample(), threading.Barrier(writers + 1)

    def writer() -> None:
        barrier.wait()
        for _ in range(writes):
            write(store, written, sample.writes)  # list.append is atomic

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    HELD.clear()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    sample.held = list(HELD)
    return elapsed, sample


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=10)
    parser.add_argument("--writes", type=int, default=40, help="writes per writer per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per variant, interleaved")
    args = parser.parse_args()
    written = _written()
    print(
        f"load average at start: {os.getloadavg()}; {len(written[0].quotes)} quotes on {len(_keys(written[0]))} chains"
    )
    with tempfile.TemporaryDirectory() as workdir, postgres_server(Path(workdir)) as url:
        database = Database(fresh_schema(url, "offer_nonce_hold"))
        Base.metadata.create_all(database.engine)
        _instrument(database.engine)
        with database.unit_of_work() as uow:
            uow.session.add(
                BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC))
            )
            uow.commit()
        store = SqlQuotingStore(database)
        variants = {"before": _before, "after": _after}
        _round(_after, store, written, args.writers, 3)  # warm the pool, the counters and the statement caches
        totals: dict[str, tuple[float, int, Sample]] = {name: (0.0, 0, Sample()) for name in variants}
        for n in range(args.rounds):
            for name in variants if n % 2 == 0 else reversed(list(variants)):
                elapsed, sample = _round(variants[name], store, written, args.writers, args.writes)
                seconds, count, merged = totals[name]
                merged.writes += sample.writes
                merged.held += sample.held
                totals[name] = (seconds + elapsed, count + len(sample.writes), merged)
                print(
                    f"round {n + 1} {name}: {len(sample.writes) / elapsed:.1f} writes/s, load {os.getloadavg()[0]:.2f}"
                )
        database.dispose()
    print(
        f"\n{args.writers} writers, {args.rounds} rounds of {args.writes} writes each; load at end: {os.getloadavg()}"
    )
    print("| order | writes | writes/s | write p50 ms | write p90 ms | counter rows held p50 ms | held p90 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rate = {}
    for name, (seconds, count, sample) in totals.items():
        rate[name] = count / seconds
        print(
            f"| {name} | {count} | {rate[name]:.1f} | {_ms(sample.writes, 0.5):.1f} | {_ms(sample.writes, 0.9):.1f} "
            f"| {_ms(sample.held, 0.5):.2f} | {_ms(sample.held, 0.9):.2f} |"
        )
    print(f"writes/s after / before: {rate['after'] / rate['before']:.2f}")


if __name__ == "__main__":
    main()
