"""chain: relay intents owned per intent (the owning transaction manager and its lease's expiry)

Revision ID: 0024_intent_owners
Revises: 0023_decision_list
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0024_intent_owners"
down_revision = "0023_decision_list"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_intents") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", store.types.UtcDateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_chain_intents_owner"), "chain_intents", ["owner"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_chain_intents_owner"), table_name="chain_intents")
    with op.batch_alter_table("chain_intents") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
