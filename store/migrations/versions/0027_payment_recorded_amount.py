"""offchain_payments: recorded_amount, the amount the operator sent on-chain when it is not the lender's (the payment
that brings the lender's payments to the loan's disclosed total of payments is sent as what the loan owed on-chain,
so the loan closes); NULL for every payment recorded before, which were sent as reported

Revision ID: 0027_payment_recorded_amount
Revises: 0026_liquidated_collateral
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0027_payment_recorded_amount"
down_revision = "0026_liquidated_collateral"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offchain_payments") as batch:
        batch.add_column(sa.Column("recorded_amount", store.types.Uint256(length=78), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offchain_payments") as batch:
        batch.drop_column("recorded_amount")
