"""compliance: the sanctions review queue (one row per borrower and version of a hit SDN entry)

Revision ID: 0009_sanctions_reviews
Revises: 0008_governance
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0009_sanctions_reviews"
down_revision = "0008_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sanctions_reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=64), nullable=False),
        sa.Column("ent_num", sa.Integer(), nullable=False),
        sa.Column("entry_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("list_version", sa.String(length=128), nullable=False),
        sa.Column("listed_name", sa.String(length=512), nullable=False),
        sa.Column("primary_name", sa.String(length=512), nullable=False),
        sa.Column("program", sa.String(length=256), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewed_at", store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("review_decision_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions_reviews")),
        sa.UniqueConstraint("borrower_id", "ent_num", "entry_fingerprint", name="uq_sanctions_reviews_entry"),
    )
    op.create_index(op.f("ix_sanctions_reviews_borrower_id"), "sanctions_reviews", ["borrower_id"], unique=False)
    op.create_index("ix_sanctions_reviews_queue", "sanctions_reviews", ["state", "created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sanctions_reviews_queue", table_name="sanctions_reviews")
    op.drop_index(op.f("ix_sanctions_reviews_borrower_id"), table_name="sanctions_reviews")
    op.drop_table("sanctions_reviews")
