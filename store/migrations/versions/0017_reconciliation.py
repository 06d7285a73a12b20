"""compliance: reconciliation runs (who, each chain's range and counts, the result's digest) and their discrepancies

Revision ID: 0017_reconciliation
Revises: 0016_audit_log
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0017_reconciliation"
down_revision = "0016_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("chains", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=True),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_index(op.f("ix_reconciliation_runs_created_at"), "reconciliation_runs", ["created_at"], unique=False)
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("what", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("record_ref", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_discrepancies_run_id_reconciliation_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_discrepancies")),
    )
    op.create_index(
        op.f("ix_reconciliation_discrepancies_run_id"), "reconciliation_discrepancies", ["run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reconciliation_discrepancies_run_id"), table_name="reconciliation_discrepancies")
    op.drop_table("reconciliation_discrepancies")
    op.drop_index(op.f("ix_reconciliation_runs_created_at"), table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
