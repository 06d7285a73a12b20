"""compliance: imported sanctions address lists (the EVM digital currency addresses of an SDN import), one row per
version, so every process screens wallets with the list the last import brought, as it does names

Revision ID: 0029_sanctions_address_lists
Revises: 0028_chain_facts_tx
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0029_sanctions_address_lists"
down_revision = "0028_chain_facts_tx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sanctions_address_lists",
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("published", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        sa.Column("imported_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("label", name=op.f("pk_sanctions_address_lists")),
    )
    op.create_index(
        op.f("ix_sanctions_address_lists_published"), "sanctions_address_lists", ["published"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sanctions_address_lists_published"), table_name="sanctions_address_lists")
    op.drop_table("sanctions_address_lists")
