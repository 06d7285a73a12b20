"""servicing: the past-due buckets announced per loan (loan.past_due once per bucket entered)

Revision ID: 0018_past_due_notices
Revises: 0017_reconciliation
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0018_past_due_notices"
down_revision = "0017_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loan_past_due_notices",
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        sa.Column("bucket", sa.String(length=8), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("as_of", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_loan_past_due_notices_loan_id_loans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("loan_id", "bucket", name=op.f("pk_loan_past_due_notices")),
    )


def downgrade() -> None:
    op.drop_table("loan_past_due_notices")
