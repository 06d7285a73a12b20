"""governance: every call a governance key makes directly, outside the Timelock (the guardian's pause): who, chain,
contract, transaction, block, reason

Revision ID: 0019_governance_actions
Revises: 0018_past_due_notices
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0019_governance_actions"
down_revision = "0018_past_due_notices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("contract", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_actions")),
        sa.UniqueConstraint("chain_id", "tx_hash", "address", name=op.f("uq_governance_actions_chain_id")),
    )


def downgrade() -> None:
    op.drop_table("governance_actions")
