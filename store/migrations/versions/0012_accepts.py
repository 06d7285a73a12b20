"""aggregator: the accept saga's records (one per quote, its step persisted before the next starts)

Revision ID: 0012_accepts
Revises: 0011_subject_keys_out
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0012_accepts"
down_revision = "0011_subject_keys_out"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accepts",
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("lease_until", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("loan_id", sa.String(length=36), nullable=True),
        sa.Column("lender_state", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("quote_id", name=op.f("pk_accepts")),
    )
    op.create_index(op.f("ix_accepts_request_id"), "accepts", ["request_id"], unique=False)
    op.create_index(op.f("ix_accepts_borrower_id"), "accepts", ["borrower_id"], unique=False)
    op.create_index(op.f("ix_accepts_step"), "accepts", ["step"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_accepts_step"), table_name="accepts")
    op.drop_index(op.f("ix_accepts_borrower_id"), table_name="accepts")
    op.drop_index(op.f("ix_accepts_request_id"), table_name="accepts")
    op.drop_table("accepts")
