"""offchain_payments: a lender's payment is its loan's, not the chain's loan number's. The payments were kept and read
by (chain id, on-chain loan id, reference); a later deployment of the contracts on the chain numbers its loans from 1
again, and its loan N was credited with the earlier deployment's loan N's payments — its first installment
"completed" the disclosed total and was sent as paying the loan in full, which closed it and released its collateral
— and a lender's reference reused for it found the earlier loan's payment (answered with that one's transaction,
never sent). Each payment now names its loan's CreditAggregator (``contract``, filled from the loan's) and is unique
by (loan, reference).

The downgrade refuses when two deployments' loans of one number hold payments of one reference (the old key cannot
hold both): wind them down first.

Revision ID: 0038_offchain_payments_contract
Revises: 0037_intent_keys_name_contract
"""

import sqlalchemy as sa
from alembic import op

revision = "0038_offchain_payments_contract"
down_revision = "0037_intent_keys_name_contract"
branch_labels = None
depends_on = None

payments = sa.table(
    "offchain_payments",
    sa.column("id", sa.Integer),
    sa.column("loan_id", sa.String),
    sa.column("chain_id", sa.BigInteger),
    sa.column("onchain_loan_id", sa.BigInteger),
    sa.column("reference", sa.String),
    sa.column("contract", sa.String),
)
loans = sa.table("loans", sa.column("id", sa.String), sa.column("contract", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("offchain_payments") as batch:
        batch.add_column(sa.Column("contract", sa.String(length=42), nullable=True))
    # every payment has its loan (a foreign key, deleted with it)
    op.execute(
        payments.update().values(
            contract=sa.select(loans.c.contract).where(loans.c.id == payments.c.loan_id).scalar_subquery()
        )
    )
    with op.batch_alter_table("offchain_payments") as batch:
        batch.alter_column("contract", existing_type=sa.String(length=42), nullable=False)
        batch.drop_constraint("uq_offchain_payments_chain_id", type_="unique")
        batch.create_unique_constraint(op.f("uq_offchain_payments_loan_id"), ["loan_id", "reference"])


def _shared_references(bind: sa.Connection) -> list[tuple[int, int, str]]:
    """(chain id, loan number, reference) held by payments of more than one loan."""
    rows = bind.execute(
        sa.select(payments.c.chain_id, payments.c.onchain_loan_id, payments.c.reference)
        .group_by(payments.c.chain_id, payments.c.onchain_loan_id, payments.c.reference)
        .having(sa.func.count() > 1)
    )
    return [(int(chain_id), int(number), str(reference)) for chain_id, number, reference in rows]


def downgrade() -> None:
    shared = _shared_references(op.get_bind())
    if shared:
        raise RuntimeError(
            "cannot downgrade below 0038: payments of loans of two deployments share (chain id, loan number, "
            f"reference) {shared[:5]}, which the old unique key cannot hold"
        )
    with op.batch_alter_table("offchain_payments") as batch:
        batch.drop_constraint("uq_offchain_payments_loan_id", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_offchain_payments_chain_id"), ["chain_id", "onchain_loan_id", "reference"]
        )
        batch.drop_column("contract")
