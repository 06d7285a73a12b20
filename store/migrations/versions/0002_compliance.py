"""compliance: decision records, KYC applicants, webhook deliveries seen, subject data keys

Revision ID: 0002_compliance
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0002_compliance"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_decisions",
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_ref", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("inputs_hash", sa.String(length=66), nullable=False),
        sa.Column("record_hash", sa.String(length=66), nullable=False),
        sa.Column("decided_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("pii_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_compliance_decisions")),
    )
    op.create_index(op.f("ix_compliance_decisions_subject_ref"), "compliance_decisions", ["subject_ref"], unique=False)
    op.create_table(
        "compliance_kyc_applicants",
        sa.Column("applicant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("applicant_id", name=op.f("pk_compliance_kyc_applicants")),
    )
    op.create_index(
        op.f("ix_compliance_kyc_applicants_subject_id"), "compliance_kyc_applicants", ["subject_id"], unique=False
    )
    op.create_table(
        "compliance_webhook_deliveries",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_compliance_webhook_deliveries")),
    )
    op.create_table(
        "compliance_subject_keys",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_compliance_subject_keys")),
    )

    op.create_table(
        "compliance_identities",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=False),
        sa.Column("sealed_identity", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_compliance_identities")),
    )


def downgrade() -> None:
    op.drop_table("compliance_identities")
    op.drop_table("compliance_subject_keys")
    op.drop_table("compliance_webhook_deliveries")
    op.drop_index(op.f("ix_compliance_kyc_applicants_subject_id"), table_name="compliance_kyc_applicants")
    op.drop_table("compliance_kyc_applicants")
    op.drop_index(op.f("ix_compliance_decisions_subject_ref"), table_name="compliance_decisions")
    op.drop_table("compliance_decisions")
