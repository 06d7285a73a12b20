"""The loan terms of ``LoanOpened`` against our records, on a real devnet and PostgreSQL: loans opened through the
relayer with our quote (its signed offer stored as the quote signer signs it) and the ledger built by the indexer's
path; then the ledger's rate of one loan and the quote's borrower of another are altered, and a run reports each
as its own category, naming the field — read through ``store.reconcile`` (the loan row and the quote's offer)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import update

from compliance.reconcile import Category
from store.aggregator import LoanRow, QuoteRow
from store.db import Database
from store.ledger import LoanRepaymentRow
from tests.contracts.harness import BORROWERS, USDC
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration

STRANGER = "0x" + "5e" * 20  # an address none of the borrowers has


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_terms_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_rate_or_borrower_other_than_the_chains_is_reported_by_field(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    rate, term = 900, 45 * 86_400
    loans = [maker.open(n, rateBps=rate, term=term) for n in range(3)]
    await index(chain, database, start)
    borrowers = [BORROWERS[n % len(BORROWERS)].address for n in range(3)]
    with database.unit_of_work() as uow:
        for loan, borrower in zip(loans, borrowers, strict=True):  # the quote's offer as our quote signer signs it
            offer = {"borrower": borrower, "rateBps": rate, "term": term}
            uow.session.execute(update(QuoteRow).where(QuoteRow.offer_digest == loan.offer_digest).values(offer=offer))
        uow.session.execute(update(LoanRow).where(LoanRow.id == loans[1].loan_id).values(rate_bps=rate - 100))
        altered = {"borrower": STRANGER, "rateBps": rate, "term": term}
        uow.session.execute(
            update(QuoteRow).where(QuoteRow.offer_digest == loans[2].offer_digest).values(offer=altered)
        )
        uow.commit()

    result = await reconciled(chain, database, start)

    found = sorted((item.category.value, item.record_ref, item.detail) for item in result.items)
    assert found == [
        (
            Category.BORROWER_MISMATCH.value,
            loans[2].loan_id,
            f"borrower: our accepted offer (quote {_quote(database, loans[2].loan_id)}) has {STRANGER}, "
            f"on-chain {borrowers[2]}",
        ),
        (Category.RATE_MISMATCH.value, loans[1].loan_id, f"rate: recorded {rate - 100} bps, on-chain {rate} bps"),
    ]
    assert loans[0].loan_id not in {item.record_ref for item in result.items}  # as recorded and as offered


def _quote(database: Database, loan_id: str) -> str | None:
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        return None if row is None else row.quote_id


async def test_every_field_the_chain_sets_on_a_loan_and_its_repayment_is_compared(
    database: Database, ethereum_local: DeployedChain
) -> None:
    """A loan's provider, funder, pool, assets, fee, terms hash and paid totals, and its repayment's payer,
    outstanding principal and payment reference: servicing acts on each, so a record that says otherwise than the
    chain is a discrepancy naming the field, the record's value and the chain's."""
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loan, untouched = maker.open(0), maker.open(1)
    maker.repay(loan, 3 * USDC)
    maker.repay(untouched, 2 * USDC)
    await index(chain, database, start)
    assert (await reconciled(chain, database, start)).items == []  # as the indexer recorded them: nothing to report
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan.loan_id)
        assert row is not None
        true = {name: getattr(row, name) for name in ("interest_paid", "principal_paid", "pool", "funder")}
        true |= {"asset": row.asset_address, "collateral": row.collateral_asset, "terms": row.terms_hash}
        repayment = uow.session.query(LoanRepaymentRow).filter_by(loan_id=loan.loan_id).one()
        paid = (repayment.payer, repayment.outstanding_principal)
        uow.session.execute(
            update(LoanRow)
            .where(LoanRow.id == loan.loan_id)
            .values(
                interest_paid=true["interest_paid"] + 7,
                principal_paid=0,
                provider_id="sim-bank",
                funder=STRANGER,
                pool=STRANGER,
                origination_fee=5,
                terms_hash="0x" + "ee" * 32,
                asset_address=STRANGER,
                collateral_asset=STRANGER,
            )
        )
        uow.session.execute(
            update(LoanRepaymentRow)
            .where(LoanRepaymentRow.id == repayment.id)
            .values(payer=STRANGER, outstanding_principal=1, payment_ref="0x" + "ab" * 32)
        )
        uow.commit()

    result = await reconciled(chain, database, start)

    assert {item.record_ref for item in result.items} == {loan.loan_id}
    found = {(item.category, item.detail) for item in result.items}
    hashed = "0x" + keccak(text="sim-bank").hex()
    onchain_provider = "0x" + keccak(text="pool:usdc").hex()
    zero_ref = "0x" + "00" * 32
    assert found == {
        (Category.AMOUNT_MISMATCH, "origination fee: recorded 5, on-chain 0"),
        (
            Category.AMOUNT_MISMATCH,
            f"interest paid: recorded {true['interest_paid'] + 7}, on-chain {true['interest_paid']} "
            "(the sum of its 1 LoanRepaid)",
        ),
        (
            Category.AMOUNT_MISMATCH,
            f"principal paid: recorded 0, on-chain {true['principal_paid']} (the sum of its 1 LoanRepaid)",
        ),
        (Category.FIELD_MISMATCH, f"asset: recorded {STRANGER}, on-chain {true['asset']}"),
        (Category.FIELD_MISMATCH, f"collateral asset: recorded {STRANGER}, on-chain {true['collateral']}"),
        (Category.FIELD_MISMATCH, f"terms hash: recorded 0x{'ee' * 32}, on-chain {true['terms']}"),
        (Category.FIELD_MISMATCH, f"pool: recorded {STRANGER}, on-chain {true['pool']}"),
        (Category.FIELD_MISMATCH, f"provider id: recorded sim-bank (keccak256 {hashed}), on-chain {onchain_provider}"),
        (Category.FIELD_MISMATCH, f"funder: recorded {STRANGER}, on-chain {true['funder']}"),
        (Category.AMOUNT_MISMATCH, f"outstandingPrincipal: recorded 1, on-chain {paid[1]}"),
        (
            Category.FIELD_MISMATCH,
            f"payer: recorded {STRANGER}, on-chain {paid[0]}; paymentRef: recorded 0x{'ab' * 32}, on-chain {zero_ref}",
        ),
    }


async def test_a_field_the_opening_set_altered_to_null_is_reported(
    database: Database, ethereum_local: DeployedChain
) -> None:
    """Once the ledger applied a loan's ``LoanOpened`` each of these fields holds a value (the paid totals 0): an
    empty one is a record altered outside the platform — servicing would read the loan as nothing repaid —, and
    the pool it no longer hides is compared too. It reconciled clean: every empty field was skipped."""
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loan = maker.open(0)
    maker.repay(loan, 3 * USDC)
    await index(chain, database, start)
    nulled = ("interest_paid", "principal_paid", "funder", "terms_hash", "origination_fee", "collateral_asset")
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan.loan_id)
        assert row is not None
        true = {name: getattr(row, name) for name in (*nulled, "asset_address", "pool")}
        values: dict[str, object] = dict.fromkeys((*nulled, "asset_address")) | {"pool": STRANGER}
        uow.session.execute(update(LoanRow).where(LoanRow.id == loan.loan_id).values(**values))
        uow.commit()

    result = await reconciled(chain, database, start)

    assert {item.record_ref for item in result.items} == {loan.loan_id}
    assert {(item.category, item.detail) for item in result.items} == {
        (
            Category.AMOUNT_MISMATCH,
            f"interest paid: recorded none, on-chain {true['interest_paid']} (the sum of its 1 LoanRepaid)",
        ),
        (
            Category.AMOUNT_MISMATCH,
            f"principal paid: recorded none, on-chain {true['principal_paid']} (the sum of its 1 LoanRepaid)",
        ),
        (Category.AMOUNT_MISMATCH, f"origination fee: recorded none, on-chain {true['origination_fee']}"),
        (Category.FIELD_MISMATCH, f"asset: recorded none, on-chain {true['asset_address']}"),
        (Category.FIELD_MISMATCH, f"collateral asset: recorded none, on-chain {true['collateral_asset']}"),
        (Category.FIELD_MISMATCH, f"terms hash: recorded none, on-chain {true['terms_hash']}"),
        (Category.FIELD_MISMATCH, f"pool: recorded {STRANGER}, on-chain {true['pool']}"),
        (Category.FIELD_MISMATCH, f"funder: recorded none, on-chain {true['funder']}"),
    }
