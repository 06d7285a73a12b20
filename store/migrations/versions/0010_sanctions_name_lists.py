"""compliance: imported sanctions name lists, one row per version

Revision ID: 0010_sanctions_name_lists
Revises: 0009_sanctions_reviews
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0010_sanctions_name_lists"
down_revision = "0009_sanctions_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sanctions_name_lists",
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("published", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("imported_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("label", name=op.f("pk_sanctions_name_lists")),
    )
    op.create_index(op.f("ix_sanctions_name_lists_published"), "sanctions_name_lists", ["published"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sanctions_name_lists_published"), table_name="sanctions_name_lists")
    op.drop_table("sanctions_name_lists")
