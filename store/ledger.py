"""Chain facts and the loan ledger's entries.

A **chain fact** is one confirmed event of our contracts as the chain emitted it: chain id, contract (name and
address), event name, decoded arguments (JSON; integers as decimal strings, bytes as 0x-hex), block number and
hash, transaction hash and log index — unique on (chain id, block hash, tx hash, log index), so a replay writes
nothing twice. ``source`` says who recorded it first: the indexer, or the accept from a receipt (not yet
confirmed; the indexer deletes it if its block does not survive). ``loan_ref`` is the event's ``loanId`` when it has
one (the CreditAggregator's numbering, shared by the CollateralManager and the pools of that chain).

The loan's **entries** — one row per repayment, collateral movement and liquidation — each point at their fact and
go with it (ON DELETE CASCADE) when a reorg removes the fact. The loan record itself is ``store.aggregator.LoanRow``.

``SqlLedgerRepository`` holds the row-level queries; the ledger's repository over them, in plain values, is
``store.loan_ledger.SqlLedger``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Table, UniqueConstraint, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from store.aggregator import LoanRow
from store.base import Base
from store.types import Uint256, UtcDateTime

SOURCE_INDEXER, SOURCE_RECEIPT = "indexer", "receipt"


class ChainFactRow(Base):
    __tablename__ = "chain_facts"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "tx_hash", "log_index", name="uq_chain_facts_log"),
        Index("ix_chain_facts_block", "chain_id", "block_number"),
        Index("ix_chain_facts_loan", "chain_id", "loan_ref"),
        Index("ix_chain_facts_event", "chain_id", "event", "block_number"),  # the reads by event (the sweep)
        Index("ix_chain_facts_tx", "chain_id", "tx_hash"),  # a transaction re-mined in another block (stale_facts)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(42))
    event: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    loan_ref: Mapped[int | None] = mapped_column(Uint256(), nullable=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LoanRepaymentRow(Base):
    """A repayment (``LoanRepaid``): on-chain, recorded by the operator (``payment_ref``), or by a liquidator."""

    __tablename__ = "loan_repayments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    fact_id: Mapped[int] = mapped_column(ForeignKey("chain_facts.id", ondelete="CASCADE"), unique=True)
    payer: Mapped[str] = mapped_column(String(42))
    interest_paid: Mapped[int] = mapped_column(Uint256())
    principal_paid: Mapped[int] = mapped_column(Uint256())
    outstanding_principal: Mapped[int] = mapped_column(Uint256())
    payment_ref: Mapped[str] = mapped_column(String(66))


class LoanCollateralMovementRow(Base):
    """Collateral locked (``CollateralAdded``) or released (``CollateralRemoved``) for a loan."""

    __tablename__ = "loan_collateral_movements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    fact_id: Mapped[int] = mapped_column(ForeignKey("chain_facts.id", ondelete="CASCADE"), unique=True)
    direction: Mapped[str] = mapped_column(String(8))  # "added" | "removed"
    account: Mapped[str] = mapped_column(String(42))
    asset: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(Uint256())


class LoanLiquidationRow(Base):
    """A liquidation (``LoanLiquidated``): what the liquidator repaid and the collateral it seized."""

    __tablename__ = "loan_liquidations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    fact_id: Mapped[int] = mapped_column(ForeignKey("chain_facts.id", ondelete="CASCADE"), unique=True)
    liquidator: Mapped[str] = mapped_column(String(42))
    debt_repaid: Mapped[int] = mapped_column(Uint256())
    collateral_seized: Mapped[int] = mapped_column(Uint256())


def _now() -> datetime:
    return datetime.now(UTC)


def jsonable(value: Any) -> Any:
    """Decoded ABI values as JSON: integers as decimal strings (uint256 outgrows every JSON number), bytes as hex."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value if value is None or isinstance(value, (str, float)) else str(value)


def _adding_facts(insert: Any) -> Any:
    """The facts' INSERT … ON CONFLICT DO NOTHING RETURNING on the table (Core: not the ORM's bulk insert path)."""
    table = cast(Table, ChainFactRow.__table__)
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["chain_id", "block_hash", "tx_hash", "log_index"])
        .returning(table.c.id, table.c.block_hash, table.c.tx_hash, table.c.log_index)
    )


_ADD_FACTS = {"postgresql": _adding_facts(pg_insert), "sqlite": _adding_facts(sqlite_insert)}


class SqlLedgerRepository:
    """Chain facts and ledger rows in the caller's session; never commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_facts(self, facts: Iterable[Mapping[str, Any]], source: str) -> dict[tuple[str, str, int], int]:
        """Insert facts (keys: chain_id, contract, address, event, args, block_number, block_hash, tx_hash,
        log_index), skipping those recorded already; the ids of the new ones by (block hash, tx hash, log index)."""
        now = _now()
        rows = [
            {
                **fact,
                "args": jsonable(dict(fact["args"])),
                "loan_ref": None if fact["args"].get("loanId") is None else int(fact["args"]["loanId"]),
                "source": source,
                "recorded_at": now,
            }
            for fact in facts
        ]
        statement = _ADD_FACTS[self.session.get_bind().dialect.name]
        new: dict[tuple[str, str, int], int] = {}
        if rows:  # one statement built once, sent as multi-row batches (SQLAlchemy's "insertmanyvalues")
            for fact_id, block_hash, tx_hash, log_index in self.session.execute(statement, rows):
                new[(block_hash, tx_hash, int(log_index))] = int(fact_id)
        return new

    def stale_facts(
        self, chain_id: int, from_block: int, to_block: int, hashes: Mapping[int, str], mined: Mapping[str, str]
    ) -> list[int]:
        """Ids of facts in blocks ``from_block``..``to_block`` whose block hash is not the delivered one (``hashes``:
        block number → canonical hash, for the blocks that hold our events; any fact in another block is stale), and
        of facts anywhere of a transaction the range mined under another block hash (``mined``: tx hash → block hash;
        read by ``ix_chain_facts_tx``)."""
        in_range = self.session.execute(
            select(ChainFactRow.id, ChainFactRow.block_number, ChainFactRow.block_hash).where(
                ChainFactRow.chain_id == chain_id,
                ChainFactRow.block_number >= from_block,
                ChainFactRow.block_number <= to_block,
            )
        ).all()
        stale = {fact_id for fact_id, number, block_hash in in_range if hashes.get(int(number)) != block_hash}
        if mined:
            elsewhere = self.session.execute(
                select(ChainFactRow.id, ChainFactRow.tx_hash, ChainFactRow.block_hash).where(
                    ChainFactRow.chain_id == chain_id,
                    ChainFactRow.tx_hash.in_(list(mined)),
                    (ChainFactRow.block_number < from_block) | (ChainFactRow.block_number > to_block),
                )
            ).all()
            stale.update(fact_id for fact_id, tx_hash, block_hash in elsewhere if mined[tx_hash] != block_hash)
        return sorted(stale)

    def facts(self, ids: Iterable[int]) -> list[ChainFactRow]:
        wanted = list(ids)
        if not wanted:
            return []
        return list(self.session.scalars(select(ChainFactRow).where(ChainFactRow.id.in_(wanted))))

    def delete_facts(self, ids: Iterable[int]) -> None:
        wanted = list(ids)
        if wanted:
            for model in (LoanRepaymentRow, LoanCollateralMovementRow, LoanLiquidationRow):
                self.session.execute(delete(model).where(model.fact_id.in_(wanted)))
            self.session.execute(delete(ChainFactRow).where(ChainFactRow.id.in_(wanted)))

    def loan_facts(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[ChainFactRow]:
        """The facts of one on-chain loan from the given contracts, in chain order."""
        return list(
            self.session.scalars(
                select(ChainFactRow)
                .where(
                    ChainFactRow.chain_id == chain_id,
                    ChainFactRow.loan_ref == loan_ref,
                    ChainFactRow.address.in_(list(addresses)),
                )
                .order_by(ChainFactRow.block_number, ChainFactRow.log_index)
            )
        )

    def fact_places(self, chain_id: int, loan_ref: int, addresses: Iterable[str]) -> list[tuple[int, int, int]]:
        """(fact id, block number, log index) of one on-chain loan's facts from the given contracts (read by
        ``ix_chain_facts_loan``; the arguments are not loaded), in no particular order."""
        rows = self.session.execute(
            select(ChainFactRow.id, ChainFactRow.block_number, ChainFactRow.log_index).where(
                ChainFactRow.chain_id == chain_id,
                ChainFactRow.loan_ref == loan_ref,
                ChainFactRow.address.in_(list(addresses)),
            )
        )
        return [(int(fact_id), int(number), int(index)) for fact_id, number, index in rows]

    def registered_pools(self, chain_id: int, aggregator: str) -> list[str]:
        """The pools that ``PoolRegistered`` facts of the CreditAggregator at ``aggregator`` name, oldest first."""
        args = self.session.scalars(
            select(ChainFactRow.args)
            .where(
                ChainFactRow.chain_id == chain_id,
                ChainFactRow.address == aggregator,
                ChainFactRow.event == "PoolRegistered",
            )
            .order_by(ChainFactRow.block_number, ChainFactRow.log_index)
        )
        return [str(fact["pool"]) for fact in args]

    def chain_facts(self, chain_id: int) -> list[ChainFactRow]:
        return list(
            self.session.scalars(
                select(ChainFactRow)
                .where(ChainFactRow.chain_id == chain_id)
                .order_by(ChainFactRow.block_number, ChainFactRow.log_index)
            )
        )

    def loan_by_onchain_id(self, chain_id: int, contract: str, onchain_loan_id: int) -> LoanRow | None:
        return self.session.scalars(
            select(LoanRow).where(
                LoanRow.chain_id == chain_id,
                LoanRow.contract == contract,
                LoanRow.onchain_loan_id == onchain_loan_id,
            )
        ).one_or_none()

    def liquidated_in(self, loan_id: str, tx_hash: str) -> bool:
        """Whether a liquidation of the loan is recorded from transaction ``tx_hash``."""
        found = self.session.scalar(
            select(LoanLiquidationRow.id)
            .join(ChainFactRow, ChainFactRow.id == LoanLiquidationRow.fact_id)
            .where(LoanLiquidationRow.loan_id == loan_id, ChainFactRow.tx_hash == tx_hash)
            .limit(1)
        )
        return found is not None

    def clear_entries(self, loan_id: str) -> None:
        for model in (LoanRepaymentRow, LoanCollateralMovementRow, LoanLiquidationRow):
            self.session.execute(delete(model).where(model.loan_id == loan_id))

    def add(self, row: Base) -> None:
        self.session.add(row)

    def delete_loan(self, loan: LoanRow) -> None:
        self.clear_entries(loan.id)
        self.session.delete(loan)
