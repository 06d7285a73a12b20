"""Reconciliation of loans: each ``LoanOpened`` with its loan record (status, outstanding principal and collateral
recomputed from the loan's facts), each ledger entry with its log, and the pools' deposits and withdrawals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from compliance._reconcile_values import (
    LOAN_MOVES,
    Category,
    ChainResult,
    ChainScope,
    Fact,
    LoanRecord,
    PoolFlow,
    Records,
    in_scope,
    item,
)
from compliance.canonical import keccak256


@dataclass
class OpenedLoan:
    opened: Fact
    facts: list[Fact] = field(default_factory=list)


def match_loans(result: ChainResult, scope: ChainScope, loans: dict[int, OpenedLoan], records: Records) -> None:
    by_number = {r.onchain_loan_id: r for r in records.loans if r.onchain_loan_id is not None}
    by_digest = {r.offer_digest.lower(): r for r in records.loans}
    seen: set[str] = set()
    for number, loan in loans.items():
        opened = loan.opened
        digest = opened.hex("offerDigest")
        record = by_digest.get(digest) or by_number.get(number)  # the offer digest is the loan's identity
        subject = f"loan #{number}"
        if record is None and number in records.unreadable_loans:  # reported as an unreadable record already
            continue
        if record is None:
            result.add(
                item(
                    scope,
                    Category.ONCHAIN_NOT_RECORDED,
                    subject,
                    "LoanOpened",
                    f"no loan record for offer {digest}",
                    opened,
                )
            )
            continue
        seen.add(record.loan_id)
        if record.offer_digest.lower() != digest:  # no record has the event's offer; one has its loan id
            result.add(
                item(
                    scope,
                    Category.OFFER_DIGEST_MISMATCH,
                    subject,
                    "LoanOpened",
                    f"offer digest: recorded {record.offer_digest}, the chain says {digest}",
                    opened,
                    record.loan_id,
                )
            )
            continue
        # found by its offer digest (the loan's identity), the record may still name another on-chain loan
        renumbered = record.onchain_loan_id is not None and record.onchain_loan_id != number
        if renumbered:
            detail = f"loan id: recorded #{record.onchain_loan_id}, the chain says #{number} for offer {digest}"
            result.add(item(scope, Category.LOAN_ID_MISMATCH, subject, "LoanOpened", detail, opened, record.loan_id))
        if record.quote_id is None or digest not in records.our_offer_digests or not record.accepted:
            why = "no quote of ours" if digest not in records.our_offer_digests else "no accept of ours recorded it"
            result.add(item(scope, Category.OPENED_WITHOUT_ACCEPT, subject, "LoanOpened", why, opened, record.loan_id))
            continue
        # the present state only when the record is still the run's last block's (the indexer may have recorded a
        # repayment, a default or a liquidation after the run read the chain and before it read the records)
        problems = _compare(record, loan, scope.at_head and record.as_of(scope.to_block))
        for category, detail in problems:
            result.add(item(scope, category, subject, "loan", detail, opened, record.loan_id))
        if not problems and not renumbered:
            result.matched(1 + sum(1 for f in loan.facts if f.event not in LOAN_MOVES))
    for record in records.loans:
        # a record with no block (its opening never confirmed) is judged by a full run: no range leaves it out
        judged = in_scope(scope, record.block_number) or (record.block_number is None and scope.full)
        if record.loan_id not in seen and judged:
            result.add(
                item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    record.loan_id,
                    "loan",
                    f"recorded as opened in {record.tx_hash} (block {record.block_number}); the chain has "
                    "no such LoanOpened (never mined, or reorged away)",
                    None,
                    record.loan_id,
                )
            )


def match_earlier_loans(
    result: ChainResult, scope: ChainScope, earlier: dict[int, list[Fact]], records: Records
) -> None:
    """A partial run's loans opened before its range: the status their facts in the range leave (a default, a
    write-off, a close) against the record's, when the range reaches the head and the record holds no fact after it.
    Left out, an incremental audit (``--since-last``) never saw a default or a write-off the ledger missed."""
    if not scope.at_head:
        return
    by_number = {r.onchain_loan_id: r for r in records.loans if r.onchain_loan_id is not None}
    for number, facts in earlier.items():
        status = _status_after(facts, None)
        if status is None:
            continue
        last = next(f for f in reversed(facts) if f.event in _STATUS_EVENTS)
        record = by_number.get(number)
        subject = f"loan #{number}"
        if record is None:
            detail = f"{last.event} of a loan opened before the range, which no loan record has"
            result.add(item(scope, Category.ONCHAIN_NOT_RECORDED, subject, str(last.event), detail, last))
        elif not record.as_of(scope.to_block):  # recorded past the run's range: its status may be a later one
            continue
        elif record.status != status:
            detail = f"status: recorded {record.status}, on-chain {status}"
            result.add(item(scope, Category.STATUS_MISMATCH, subject, "loan", detail, last, record.loan_id))
        else:
            result.matched()


_STATUS_EVENTS = ("LoanDefaulted", "LoanWrittenOff", "LoanCancelled", "LoanClosed")


def _status_after(facts: list[Fact], status: str | None) -> str | None:
    """The status a loan's facts (in chain order) leave it in from ``status`` (None: a loan opened before the facts,
    its status then not known; returned unchanged when none of them changes it)."""
    liquidated_in: set[str] = set()
    for fact in facts:
        if fact.event == "LoanLiquidated":
            liquidated_in.add(fact.tx_hash)
        elif fact.event == "LoanDefaulted":
            status = "defaulted"
        elif fact.event == "LoanWrittenOff":
            status = "written_off"
        elif fact.event == "LoanCancelled":  # before its LoanClosed, which leaves it cancelled
            status = "cancelled"
        elif fact.event == "LoanClosed" and status in (None, "active", "defaulted"):
            status = "liquidated" if fact.tx_hash in liquidated_in else "repaid"
    return status


def _expected(loan: OpenedLoan) -> tuple[str, int, int]:
    """(status, outstanding principal, collateral held) as the chain's events say."""
    opened = loan.opened
    outstanding, collateral = opened.uint("principal"), opened.uint("collateralAmount")
    for fact in loan.facts:
        if fact.event in ("LoanRepaid", "LoanDefaulted"):
            outstanding = fact.uint("outstandingPrincipal")
        elif fact.event in ("LoanWrittenOff", "LoanCancelled"):
            outstanding = 0
        elif fact.event == "LoanLiquidated":  # the seized collateral leaves with no CollateralRemoved of its own
            collateral = max(0, collateral - fact.uint("collateralSeized"))
        elif fact.event == "CollateralAdded" and fact.tx_hash != opened.tx_hash:
            collateral += fact.uint("amount")
        elif fact.event == "CollateralRemoved":
            collateral = max(0, collateral - fact.uint("amount"))
    return _status_after(loan.facts, "active") or "active", outstanding, collateral


def _compare(record: LoanRecord, loan: OpenedLoan, at_head: bool = True) -> list[tuple[Category, str]]:
    """What ``record`` says otherwise than the chain; its present state (outstanding principal, collateral, status)
    only when the facts reach the chain's head (``at_head``): a later block may have changed it."""
    status, outstanding, collateral = _expected(loan)
    problems: list[tuple[Category, str]] = []
    principal = loan.opened.uint("principal")
    if record.principal != principal:
        problems.append((Category.AMOUNT_MISMATCH, f"principal: recorded {record.principal}, on-chain {principal}"))
    problems.extend(_terms_otherwise(record, loan.opened))
    if not at_head:
        return problems
    held = _held(record)
    if held(record.outstanding_principal) and record.outstanding_principal != outstanding:
        problems.append(
            (
                Category.AMOUNT_MISMATCH,
                f"outstanding principal: recorded {_shown(record.outstanding_principal)}, on-chain {outstanding}",
            )
        )
    if held(record.collateral_amount) and record.collateral_amount != collateral:
        problems.append(
            (
                Category.AMOUNT_MISMATCH,
                f"collateral: recorded {_shown(record.collateral_amount)}, on-chain {collateral}",
            )
        )
    if record.status != status:
        problems.append((Category.STATUS_MISMATCH, f"status: recorded {record.status}, on-chain {status}"))
    problems.extend(_paid_otherwise(record, loan))
    return problems


def _paid_otherwise(record: LoanRecord, loan: OpenedLoan) -> list[tuple[Category, str]]:
    """The record's paid totals against the sum of its ``LoanRepaid`` events (a liquidation's debt repaid is not
    in them: the aggregator's settlement of it emits its own ``LoanRepaid``). What servicing reads as paid."""
    repaid = [fact for fact in loan.facts if fact.event == "LoanRepaid"]
    problems: list[tuple[Category, str]] = []
    held = _held(record)
    for name, recorded, arg in (
        ("interest paid", record.interest_paid, "interestPaid"),
        ("principal paid", record.principal_paid, "principalPaid"),
    ):
        onchain = sum(fact.uint(arg) for fact in repaid)
        if held(recorded) and recorded != onchain:
            detail = (
                f"{name}: recorded {_shown(recorded)}, on-chain {onchain} (the sum of its {len(repaid)} LoanRepaid)"
            )
            problems.append((Category.AMOUNT_MISMATCH, detail))
    return problems


# LoanOpened's argument, the loan record's field, the quote's offer field, the category, how the detail names it
_TERMS = (
    ("borrower", "borrower", "borrower", Category.BORROWER_MISMATCH, "borrower", ""),
    ("rateBps", "rate_bps", "rateBps", Category.RATE_MISMATCH, "rate", " bps"),
    ("term", "term_seconds", "term", Category.TERM_MISMATCH, "term", " s"),
    ("originationFee", "origination_fee", "originationFee", Category.AMOUNT_MISMATCH, "origination fee", ""),
    ("asset", "asset_address", "asset", Category.FIELD_MISMATCH, "asset", ""),
    ("collateralAsset", "collateral_asset", "collateralAsset", Category.FIELD_MISMATCH, "collateral asset", ""),
    ("termsHash", "terms_hash", "termsHash", Category.FIELD_MISMATCH, "terms hash", ""),
    ("pool", None, "pool", Category.FIELD_MISMATCH, "pool", ""),
    ("providerId", None, "providerId", Category.FIELD_MISMATCH, "provider id", ""),
)
ZERO_ADDRESS = "0x" + "00" * 20


def _terms_otherwise(record: LoanRecord, opened: Fact) -> list[tuple[Category, str]]:
    """What the loan record and our accepted quote's offer say otherwise than the ``LoanOpened`` (who borrows, at
    what rate and for how long, from which pool or provider, in which assets, the fee, the disclosure's hash, who
    funds it): one problem per field and source (a field the offer does not hold is not compared; the record's, see
    ``_held``)."""
    problems: list[tuple[Category, str]] = []
    recorded_by_arg = _recorded_terms(record)
    for arg, _, offer_key, category, name, unit in _TERMS:
        if arg not in opened.args:
            continue
        onchain_value = _onchain(opened.args[arg])
        onchain = _term(onchain_value)
        recorded, offered = recorded_by_arg.get(arg), record.offer.get(offer_key)
        if recorded is not None and _term(recorded[0]) != onchain:
            shown = f"{recorded[1]}{unit}" if recorded[0] is not None else "none"
            problems.append((category, f"{name}: recorded {shown}, on-chain {onchain_value}{unit}"))
        if offered is not None and _term(offered) != onchain:
            detail = f"{name}: our accepted offer (quote {record.quote_id}) has {offered}{unit}, on-chain "
            problems.append((category, f"{detail}{onchain_value}{unit}"))
    if _held(record)(record.funder) and "pool" in opened.args and "providerId" in opened.args:
        pool = _onchain(opened.args["pool"])
        funder = pool if _term(pool) != ZERO_ADDRESS else _onchain(opened.args["providerId"])
        if _term(record.funder) != _term(funder):
            problems.append((Category.FIELD_MISMATCH, f"funder: recorded {_shown(record.funder)}, on-chain {funder}"))
    return problems


def _recorded_terms(record: LoanRecord) -> dict[str, tuple[object, object]]:
    """The record's value of each ``_TERMS`` argument it holds (``_held``) as the event would carry it, and as the
    detail shows it: the provider id as its keccak256, no pool as the zero address (once the opening is recorded)."""
    values: dict[str, tuple[object, object]] = {}
    held = _held(record)
    for arg, field_name, *_ in _TERMS:
        if field_name is not None and held(value := getattr(record, field_name)):
            values[arg] = (value, value)
    if record.onchain_loan_id is not None or record.asset_address is not None:
        values["pool"] = (record.pool or ZERO_ADDRESS, record.pool or ZERO_ADDRESS)
    if record.provider_id is not None:
        hashed = "0x" + keccak256(record.provider_id.encode()).hex()
        values["providerId"] = (hashed, f"{record.provider_id} (keccak256 {hashed})")
    return values


def _held(record: LoanRecord) -> Callable[[object], bool]:
    """Whether a value of ``record`` is compared with the chain's. Once the ledger applied the loan's ``LoanOpened``
    (the record has its on-chain id) every field the event sets holds a value — the paid totals 0, the pool None for
    a traditional loan (the zero address), compared as such —, so an empty one (altered to NULL) is a value and is
    reported; before, an empty field is one the record does not hold yet and is not compared."""
    opened = record.onchain_loan_id is not None
    return lambda value: opened or value is not None


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def _onchain(value: object) -> object:
    """An event's argument as text compares it: bytes32 as 0x hex."""
    return "0x" + bytes(value).hex() if isinstance(value, (bytes, bytearray)) else value


def _term(value: object) -> str:
    """An address compared in any case, a number whether JSON holds it as a number or as text."""
    text = str(value).strip().lower()
    return str(int(text)) if text.isdigit() else text


_ENTRY_AMOUNTS = {
    "LoanRepaid": ("interestPaid", "principalPaid", "outstandingPrincipal"),
    "CollateralAdded": ("amount",),
    "CollateralRemoved": ("amount",),
    "LoanLiquidated": ("debtRepaid", "collateralSeized"),
}
#: the addresses and references an entry claims, by the event's argument (compared in any case)
_ENTRY_FIELDS = {
    "LoanRepaid": ("payer", "paymentRef"),
    "CollateralAdded": ("from", "asset"),
    "CollateralRemoved": ("to", "asset"),
    "LoanLiquidated": ("liquidator",),
}


def match_entries(
    result: ChainResult, scope: ChainScope, onchain: dict[tuple[str, int], Fact], records: Records
) -> None:
    recorded = {(e.tx_hash, e.log_index): e for e in records.entries}
    for key, fact in onchain.items():
        entry = recorded.get(key)
        subject = f"loan #{fact.uint('loanId')}"
        event = str(fact.event)
        if entry is None:
            if fact.uint("loanId") not in records.unreadable_loans:  # else its loan's row is reported unreadable
                result.add(
                    item(scope, Category.ONCHAIN_NOT_RECORDED, subject, event, "no ledger entry for this log", fact)
                )
            continue
        wrong = [
            f"{name}: recorded {entry.amounts.get(name)}, on-chain {fact.uint(name)}"
            for name in _ENTRY_AMOUNTS[event]
            if entry.amounts.get(name) != fact.uint(name)
        ]
        if entry.kind != event:
            wrong.append(f"recorded as {entry.kind}")
        if entry.onchain_loan_id != fact.uint("loanId"):
            wrong.append(f"booked on loan #{entry.onchain_loan_id}")
        if wrong:
            result.add(item(scope, Category.AMOUNT_MISMATCH, subject, event, "; ".join(wrong), fact, entry.loan_id))
        otherwise = _entry_fields_otherwise(entry.fields, fact)
        if otherwise:
            result.add(item(scope, Category.FIELD_MISMATCH, subject, event, otherwise, fact, entry.loan_id))
        if not wrong and not otherwise:
            result.matched()
    for key, entry in recorded.items():
        if key not in onchain and in_scope(scope, entry.block_number):
            result.add(
                item(
                    scope,
                    Category.RECORDED_NOT_ONCHAIN,
                    entry.loan_id,
                    entry.kind,
                    f"recorded from {entry.tx_hash} log {entry.log_index}; the chain has no such log (never "
                    "sent, or reorged away)",
                    None,
                    entry.loan_id,
                )
            )


def _entry_fields_otherwise(recorded: Mapping[str, str], fact: Fact) -> str:
    """The entry's addresses and references that are not the log's ("payer: recorded …, on-chain …"; empty when
    all agree; a field the entry does not hold is not compared)."""
    wrong = []
    for name in _ENTRY_FIELDS.get(str(fact.event), ()):
        if name in recorded and name in fact.args:
            onchain = _onchain(fact.args[name])
            if _term(recorded[name]) != _term(onchain):
                wrong.append(f"{name}: recorded {recorded[name]}, on-chain {onchain}")
    return "; ".join(wrong)


def count_pool_flow(result: ChainResult, fact: Fact) -> None:
    flow = result.pools.get(fact.contract, PoolFlow(fact.contract))
    assets = fact.uint("assets")
    if fact.event == "Deposit":
        flow = PoolFlow(flow.pool, flow.deposits + 1, flow.withdrawals, flow.deposited + assets, flow.withdrawn)
    else:
        flow = PoolFlow(flow.pool, flow.deposits, flow.withdrawals + 1, flow.deposited, flow.withdrawn + assets)
    result.pools[fact.contract] = flow
