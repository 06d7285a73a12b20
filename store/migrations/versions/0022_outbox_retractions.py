"""aggregator: outbox events retracted when a reorg removed the chain fact they report

Revision ID: 0022_outbox_retractions
Revises: 0021_offchain_payments
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0022_outbox_retractions"
down_revision = "0021_offchain_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("retracted_at", store.types.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retracted_by", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("retracted_by")
        batch.drop_column("retracted_at")
