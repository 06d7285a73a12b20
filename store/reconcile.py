"""What the platform holds for one chain, read for the reconciler (``compliance.reconcile.Records``): the loans with
whether an accept of ours recorded them and their quote's signed offer, our quotes' offer digests, the ledger's
entries with the transaction and log each claims, the transactions the platform sent as its own (their confirmed
intents: relayed repayments, the operator's defaults, cancellations and liquidation holds), the governance proposals
and the governance calls our keys sent directly (the guardian's pauses), the lenders' reported payments. Reads only,
in the caller's session."""

from __future__ import annotations

from sqlalchemy import String, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from compliance._reconcile_relayed import HOLD_INTENTS, RELAYED_PREFIXES
from compliance.reconcile import (
    ActionRecord,
    EntryRecord,
    LoanRecord,
    PaymentRecord,
    ProposalRecord,
    Records,
    RelayedIntent,
    UnreadableRecord,
)
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow, QuoteRow
from store.chain_rows import CONFIRMED, ChainAttemptRow, ChainIntentRow
from store.governance import GovernanceActionRow, GovernanceProposalRow
from store.ledger import ChainFactRow, LoanCollateralMovementRow, LoanLiquidationRow, LoanRepaymentRow
from store.payments import OffchainPaymentRow, SqlPaymentRecords
from store.unreadable import UnreadableValue, unreadable_values


def chain_records(session: Session, chain_id: int, aggregator: str, collateral_manager: str) -> Records:
    """What the platform holds for one chain's CreditAggregator at ``aggregator``. Each loan comes with the block of
    its newest ledger fact (of that aggregator or its CollateralManager: another deployment's loan of the same number
    is another loan), read in the same statement (one snapshot): a record that changed after the run's last block
    (the indexer goes on while the run reads the chain) is known as such, rather than judged against the chain's older
    state."""
    unreadable = _unreadable(session, chain_id, aggregator)
    bad = {table: {u.row_id for u in unreadable if u.table == table} for table in {u.table for u in unreadable}}
    bad_loans, bad_quotes = bad.get(LoanRow.__tablename__, set()), bad.get(QuoteRow.__tablename__, set())
    accepted = set(session.scalars(select(AcceptRow.loan_id).where(AcceptRow.loan_id.is_not(None))))
    last_facts = (
        select(ChainFactRow.loan_ref, func.max(ChainFactRow.block_number).label("last_block"))
        .where(
            ChainFactRow.chain_id == chain_id,
            ChainFactRow.loan_ref.is_not(None),
            func.lower(ChainFactRow.address).in_([aggregator.lower(), collateral_manager.lower()]),
        )
        .group_by(ChainFactRow.loan_ref)
        .subquery()
    )
    loans = [
        LoanRecord(
            loan_id=row.id,
            onchain_loan_id=row.onchain_loan_id,
            offer_digest=row.offer_digest,
            principal=int(row.principal),
            status=row.status,
            outstanding_principal=row.outstanding_principal,
            collateral_amount=row.collateral_amount,
            tx_hash=row.tx_hash,
            block_number=row.block_number,
            quote_id=row.quote_id,
            accepted=row.id in accepted,
            borrower=row.borrower_address,
            rate_bps=row.rate_bps,
            term_seconds=row.term_seconds,
            offer=dict(offer or {}),
            last_fact_block=None if last_block is None else int(last_block),
            provider_id=row.provider_id,
            funder=row.funder,
            pool=row.pool,
            asset_address=row.asset_address,
            origination_fee=row.origination_fee,
            collateral_asset=row.collateral_asset,
            terms_hash=row.terms_hash,
            interest_paid=row.interest_paid,
            principal_paid=row.principal_paid,
        )
        for row, offer, last_block in session.execute(
            select(LoanRow, QuoteRow.offer, last_facts.c.last_block)
            .outerjoin(QuoteRow, (QuoteRow.id == LoanRow.quote_id) & QuoteRow.id.not_in(bad_quotes))
            .outerjoin(last_facts, last_facts.c.loan_ref == LoanRow.onchain_loan_id)
            .where(
                LoanRow.chain_id == chain_id,
                func.lower(LoanRow.contract) == aggregator.lower(),
                LoanRow.id.not_in(bad_loans),
            )
        )
    ]
    digests = frozenset(
        digest.lower()
        for digest in session.scalars(
            select(QuoteRow.offer_digest).where(
                QuoteRow.chain_id == chain_id, func.lower(QuoteRow.contract) == aggregator.lower()
            )
        )
    )
    return Records(
        loans,
        _entries(session, chain_id, bad),
        _proposals(session, chain_id, bad.get(GovernanceProposalRow.__tablename__, set())),
        digests,
        _intents(session, chain_id, (aggregator, collateral_manager)),
        _actions(session, chain_id, bad.get(GovernanceActionRow.__tablename__, set())),
        _payments(session, chain_id, aggregator, bad.get(OffchainPaymentRow.__tablename__, set())),
        _hold_transactions(session, chain_id, collateral_manager),
        [UnreadableRecord(u.table, u.row_id, u.column, str(u)) for u in unreadable],
        _loan_numbers(session, bad_loans),
    )


def _loan_numbers(session: Session, loan_ids: set[str]) -> frozenset[int]:
    """The on-chain ids of the loans ``loan_ids`` (rows that do not read: each id read as text, one that is no
    number itself left out)."""
    if not loan_ids:
        return frozenset()
    numbers = session.scalars(select(type_coerce(LoanRow.onchain_loan_id, String())).where(LoanRow.id.in_(loan_ids)))
    return frozenset(int(text) for text in numbers if text is not None and text.isdigit())


def _unreadable(session: Session, chain_id: int, aggregator: str) -> list[UnreadableValue]:
    """The rows of this chain the reconciler reads that hold a value their column cannot (altered by hand): left out
    of the match and reported, rather than failing the run."""
    on_chain = select(ChainFactRow.id).where(ChainFactRow.chain_id == chain_id)
    ours = func.lower(LoanRow.contract) == aggregator.lower()
    return [
        *unreadable_values(session, LoanRow, LoanRow.chain_id == chain_id, ours),
        *unreadable_values(
            session, QuoteRow, QuoteRow.chain_id == chain_id, func.lower(QuoteRow.contract) == aggregator.lower()
        ),
        *unreadable_values(session, ChainFactRow, ChainFactRow.chain_id == chain_id),
        *(
            found
            for entry in (LoanRepaymentRow, LoanCollateralMovementRow, LoanLiquidationRow)
            for found in unreadable_values(session, entry, entry.fact_id.in_(on_chain))
        ),
        *unreadable_values(session, GovernanceProposalRow, GovernanceProposalRow.chain_id == chain_id),
        *unreadable_values(session, GovernanceActionRow, GovernanceActionRow.chain_id == chain_id),
        *unreadable_values(
            session,
            OffchainPaymentRow,
            OffchainPaymentRow.chain_id == chain_id,
            func.lower(OffchainPaymentRow.contract) == aggregator.lower(),
        ),
    ]


def _intents(session: Session, chain_id: int, contracts: tuple[str, str]) -> list[RelayedIntent]:
    """The transactions the platform sent as its own to ``contracts`` (this deployment's CreditAggregator and
    CollateralManager: another deployment's intents on the chain are not this one's) and saw confirmed: the
    borrowers' repayments it relayed (``aggregator.repaying``'s ``repay:`` intents) and the operator's loan actions
    (``aggregator.servicing``)."""
    rows = session.execute(
        select(ChainIntentRow.key, ChainIntentRow.tx_hash, ChainIntentRow.block_number).where(
            ChainIntentRow.chain_id == chain_id,
            or_(*(ChainIntentRow.key.startswith(prefix) for prefix in RELAYED_PREFIXES)),
            func.lower(ChainIntentRow.to_address).in_([address.lower() for address in contracts]),
            ChainIntentRow.status == CONFIRMED,
        )
    )
    return [RelayedIntent(key, str(tx_hash), block) for key, tx_hash, block in rows if tx_hash]


def _hold_transactions(session: Session, chain_id: int, collateral_manager: str) -> frozenset[str]:
    """Every transaction signed for a liquidation hold or release of ours on this CollateralManager."""
    rows = session.scalars(
        select(ChainAttemptRow.tx_hash)
        .join(ChainIntentRow, ChainIntentRow.key == ChainAttemptRow.intent_key)
        .where(
            ChainIntentRow.chain_id == chain_id,
            or_(*(ChainIntentRow.key.startswith(prefix) for prefix in HOLD_INTENTS)),
            func.lower(ChainIntentRow.to_address) == collateral_manager.lower(),
        )
    )
    return frozenset(str(tx_hash) for tx_hash in rows)


def _entries(session: Session, chain_id: int, bad: dict[str, set[str]]) -> list[EntryRecord]:
    """The ledger's entries of this chain, but those (or whose fact) ``bad`` names unreadable."""
    bad_facts = [int(i) for i in bad.get(ChainFactRow.__tablename__, set())]
    found: list[EntryRecord] = []
    repayments = session.execute(
        select(LoanRepaymentRow, ChainFactRow, LoanRow.onchain_loan_id)
        .join(ChainFactRow, ChainFactRow.id == LoanRepaymentRow.fact_id)
        .join(LoanRow, LoanRow.id == LoanRepaymentRow.loan_id)
        .where(
            ChainFactRow.chain_id == chain_id,
            ChainFactRow.id.not_in(bad_facts),
            LoanRepaymentRow.id.not_in(_ids(bad, LoanRepaymentRow.__tablename__)),
            LoanRow.id.not_in(bad.get(LoanRow.__tablename__, set())),
        )
    )
    for repayment, fact, number in repayments:
        amounts = {
            "interestPaid": int(repayment.interest_paid),
            "principalPaid": int(repayment.principal_paid),
            "outstandingPrincipal": int(repayment.outstanding_principal),
        }
        fields = {"payer": repayment.payer, "paymentRef": repayment.payment_ref}
        found.append(_entry("LoanRepaid", repayment.loan_id, number, fact, amounts, fields))
    movements = session.execute(
        select(LoanCollateralMovementRow, ChainFactRow, LoanRow.onchain_loan_id)
        .join(ChainFactRow, ChainFactRow.id == LoanCollateralMovementRow.fact_id)
        .join(LoanRow, LoanRow.id == LoanCollateralMovementRow.loan_id)
        .where(
            ChainFactRow.chain_id == chain_id,
            ChainFactRow.id.not_in(bad_facts),
            LoanCollateralMovementRow.id.not_in(
                [int(i) for i in bad.get(LoanCollateralMovementRow.__tablename__, set())]
            ),
            LoanRow.id.not_in(bad.get(LoanRow.__tablename__, set())),
        )
    )
    for movement, fact, number in movements:
        added = movement.direction == "added"
        kind = "CollateralAdded" if added else "CollateralRemoved"
        fields = {"from" if added else "to": movement.account, "asset": movement.asset}
        found.append(_entry(kind, movement.loan_id, number, fact, {"amount": int(movement.amount)}, fields))
    liquidations = session.execute(
        select(LoanLiquidationRow, ChainFactRow, LoanRow.onchain_loan_id)
        .join(ChainFactRow, ChainFactRow.id == LoanLiquidationRow.fact_id)
        .join(LoanRow, LoanRow.id == LoanLiquidationRow.loan_id)
        .where(
            ChainFactRow.chain_id == chain_id,
            ChainFactRow.id.not_in(bad_facts),
            LoanLiquidationRow.id.not_in(_ids(bad, LoanLiquidationRow.__tablename__)),
            LoanRow.id.not_in(bad.get(LoanRow.__tablename__, set())),
        )
    )
    for liquidation, fact, number in liquidations:
        amounts = {
            "debtRepaid": int(liquidation.debt_repaid),
            "collateralSeized": int(liquidation.collateral_seized),
        }
        fields = {"liquidator": liquidation.liquidator}
        found.append(_entry("LoanLiquidated", liquidation.loan_id, number, fact, amounts, fields))
    return found


def _ids(bad: dict[str, set[str]], table: str) -> list[int]:
    return [int(i) for i in bad.get(table, set())]


def _entry(
    kind: str, loan_id: str, number: int | None, fact: ChainFactRow, amounts: dict[str, int], fields: dict[str, str]
) -> EntryRecord:
    block = int(fact.block_number)
    return EntryRecord(kind, loan_id, number, fact.tx_hash, int(fact.log_index), block, amounts, fields)


def _proposals(session: Session, chain_id: int, bad: set[str]) -> list[ProposalRecord]:
    rows = session.scalars(
        select(GovernanceProposalRow).where(
            GovernanceProposalRow.chain_id == chain_id, GovernanceProposalRow.id.not_in([int(i) for i in bad])
        )
    )
    return [
        ProposalRecord(
            row.operation_id,
            row.state,
            dict(row.tx_hashes),
            list(row.calls),
            salt=row.salt,
            predecessor=row.predecessor,
            delay_seconds=row.delay_seconds,
            proposer=row.proposer,
        )
        for row in rows
    ]


def _actions(session: Session, chain_id: int, bad: set[str]) -> list[ActionRecord]:
    rows = session.scalars(
        select(GovernanceActionRow).where(
            GovernanceActionRow.chain_id == chain_id, GovernanceActionRow.id.not_in([int(i) for i in bad])
        )
    )
    return [ActionRecord(row.action, row.address, row.sender, row.tx_hash, row.block_number) for row in rows]


def _payments(session: Session, chain_id: int, aggregator: str, bad: set[str]) -> list[PaymentRecord]:
    return [
        PaymentRecord(
            p.reference, p.onchain_loan_id, p.amount, p.loan_id, p.status, p.tx_hash, p.block_number, p.recorded_amount
        )
        for p in SqlPaymentRecords(session).for_aggregator(chain_id, aggregator, [int(i) for i in bad])
    ]
