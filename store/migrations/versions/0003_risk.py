"""risk: risk decisions

Revision ID: 0003_risk
Revises: 0002_compliance
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0003_risk"
down_revision = "0002_compliance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("pd", sa.String(length=32), nullable=False),
        sa.Column("max_ltv_bps", sa.Integer(), nullable=False),
        sa.Column("max_amount", sa.String(length=80), nullable=False),
        sa.Column("spread_bps", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("inputs_hash", sa.String(length=66), nullable=False),
        sa.Column("decision_hash", sa.String(length=66), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("decided_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
    )
    op.create_index(op.f("ix_risk_decisions_borrower_id"), "risk_decisions", ["borrower_id"], unique=False)
    op.create_index(op.f("ix_risk_decisions_request_id"), "risk_decisions", ["request_id"], unique=False)
    op.create_index(op.f("ix_risk_decisions_inputs_hash"), "risk_decisions", ["inputs_hash"], unique=False)
    op.create_index(op.f("ix_risk_decisions_decision_hash"), "risk_decisions", ["decision_hash"], unique=False)
    op.create_table(
        "credit_profiles",
        sa.Column("borrower_id", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("borrower_id", name=op.f("pk_credit_profiles")),
    )


def downgrade() -> None:
    op.drop_table("credit_profiles")
    op.drop_index(op.f("ix_risk_decisions_decision_hash"), table_name="risk_decisions")
    op.drop_index(op.f("ix_risk_decisions_inputs_hash"), table_name="risk_decisions")
    op.drop_index(op.f("ix_risk_decisions_request_id"), table_name="risk_decisions")
    op.drop_index(op.f("ix_risk_decisions_borrower_id"), table_name="risk_decisions")
    op.drop_table("risk_decisions")
