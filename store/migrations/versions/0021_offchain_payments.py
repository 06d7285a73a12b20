"""servicing: the lenders' reported payments (payment.received accepted: reference, loan, amount), settled with the
operator's recordOffchainRepayment transaction

Revision ID: 0021_offchain_payments
Revises: 0020_provider_registry_version
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0021_offchain_payments"
down_revision = "0020_provider_registry_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offchain_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("payment_ref", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=66), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("onchain_loan_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", store.types.Uint256(length=78), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("received_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_offchain_payments_loan_id_loans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offchain_payments")),
        sa.UniqueConstraint("chain_id", "onchain_loan_id", "reference", name=op.f("uq_offchain_payments_chain_id")),
    )
    op.create_index(op.f("ix_offchain_payments_loan_id"), "offchain_payments", ["loan_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_offchain_payments_loan_id"), table_name="offchain_payments")
    op.drop_table("offchain_payments")
