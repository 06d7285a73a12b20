"""governance: every timelock proposal made through creditmesh admin (chain, operation id, calls, proposer,
transaction hashes, state)

Revision ID: 0008_governance
Revises: 0007_ledger
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0008_governance"
down_revision = "0007_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_proposals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("timelock", sa.String(length=42), nullable=False),
        sa.Column("operation_id", sa.String(length=66), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(length=66), nullable=False),
        sa.Column("predecessor", sa.String(length=66), nullable=False),
        sa.Column("delay_seconds", sa.BigInteger(), nullable=False),
        sa.Column("proposer", sa.String(length=42), nullable=False),
        sa.Column("safe_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tx_hashes", sa.JSON(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_proposals")),
        sa.UniqueConstraint("chain_id", "timelock", "operation_id", name=op.f("uq_governance_proposals_chain_id")),
    )


def downgrade() -> None:
    op.drop_table("governance_proposals")
