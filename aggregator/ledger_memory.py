"""The ledger's in-memory fake (``aggregator.ledger.LedgerRepository``) for unit tests: facts, loan records, their
entries and the loan events written, in dictionaries and lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aggregator.loan_events import LoanEvent
from aggregator.projection import Entry, Fact, LedgerChain, LiquidationEntry, LoanState, QuoteLink
from aggregator.retraction import RemovedFact
from chain.events import ChainEvent


class InMemoryLedger:
    def __init__(self) -> None:
        self.facts_by_id: dict[int, tuple[int, Fact]] = {}  # id → (chain id, fact)
        self.sources: dict[int, str] = {}
        self.loans: dict[str, LoanState] = {}
        self.entries: list[Entry] = []
        self.quotes: dict[str, QuoteLink] = {}  # by offer digest
        self.wallets: dict[str, str] = {}  # wallet → borrower id
        self.published: list[tuple[str, LoanEvent]] = []  # (loan id, event), in the order written
        self.retractions: list[RemovedFact] = []  # asked to be retracted unless a remaining fact makes them again

    def add_facts(self, events: Sequence[ChainEvent], source: str) -> dict[tuple[str, str, int], int]:
        known = {(f.block_hash, f.tx_hash, f.log_index, chain) for chain, f in self.facts_by_id.values()}
        new: dict[tuple[str, str, int], int] = {}
        for event in events:
            where = (event.block_hash, event.tx_hash, event.log_index)
            if (*where, event.chain_id) in known or where in new:
                continue
            fact_id = max(self.facts_by_id, default=0) + 1
            self.facts_by_id[fact_id] = (event.chain_id, Fact.of_event(event, fact_id))
            self.sources[fact_id] = source
            new[where] = fact_id
        return new

    def stale_facts(
        self, chain_id: int, from_block: int, to_block: int, hashes: Mapping[int, str], mined: Mapping[str, str]
    ) -> list[int]:
        return [
            fact.id
            for chain, fact in self.facts_by_id.values()
            if chain == chain_id
            and (
                (from_block <= fact.block_number <= to_block and hashes.get(fact.block_number) != fact.block_hash)
                or mined.get(fact.tx_hash, fact.block_hash) != fact.block_hash
            )
        ]

    def facts(self, ids: Iterable[int]) -> list[Fact]:
        return [self.facts_by_id[i][1] for i in ids if i in self.facts_by_id]

    def delete_facts(self, ids: Iterable[int]) -> None:
        gone = set(ids)
        self.entries = [entry for entry in self.entries if entry.fact_id not in gone]
        for fact_id in gone:
            self.facts_by_id.pop(fact_id, None)

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[Fact]:
        wanted = {address.lower() for address in addresses}
        found = [
            fact
            for chain, fact in self.facts_by_id.values()
            if chain == chain_id and fact.loan_ref == loan_ref and fact.address.lower() in wanted
        ]
        return sorted(found, key=lambda f: (f.block_number, f.log_index))

    def fact_places(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[tuple[int, int, int]]:
        return [(fact.id, fact.block_number, fact.log_index) for fact in self.loan_facts(chain_id, loan_ref, addresses)]

    def loan(self, loan_id: str) -> LoanState | None:
        return self.loans.get(loan_id)

    def loan_to_open(self, loan_id: str, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        return self.loan(loan_id) or self.loan_by_onchain_id(chain_id, contract, loan_ref)

    def loan_by_onchain_id(self, chain_id: int, contract: str, loan_ref: int) -> LoanState | None:
        return next(
            (
                loan
                for loan in self.loans.values()
                if loan.chain_id == chain_id and loan.contract == contract and loan.onchain_loan_id == loan_ref
            ),
            None,
        )

    def quote_by_digest(self, offer_digest: str) -> QuoteLink | None:
        return self.quotes.get(offer_digest)

    def borrower_by_wallet(self, wallet: str) -> str | None:
        return self.wallets.get(wallet)

    def save_loan(self, loan: LoanState) -> None:
        self.loans[loan.id] = loan

    def add_entry(self, entry: Entry) -> None:
        self.entries.append(entry)

    def clear_entries(self, loan_id: str) -> None:
        self.entries = [entry for entry in self.entries if entry.loan_id != loan_id]

    def delete_loan(self, loan_id: str) -> None:
        self.clear_entries(loan_id)
        self.loans.pop(loan_id, None)

    def liquidated_in(self, loan_id: str, tx_hash: str) -> bool:
        return any(
            isinstance(entry, LiquidationEntry)
            and entry.loan_id == loan_id
            and self.facts_by_id[entry.fact_id][1].tx_hash == tx_hash
            for entry in self.entries
        )

    def publish(self, loan: LoanState, event: LoanEvent) -> None:
        if all((loan.id, event.event_type, event.key) != (i, e.event_type, e.key) for i, e in self.published):
            self.published.append((loan.id, event))

    def retract_unbacked(self, chain: LedgerChain, removed: Sequence[RemovedFact]) -> None:
        self.retractions.extend(removed)
