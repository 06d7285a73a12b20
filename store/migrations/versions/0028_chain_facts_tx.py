"""chain_facts: an index on (chain_id, tx_hash), so that a range's events find the facts of their transactions
recorded under another block (a transaction re-mined below its old block after a reorg) without scanning the facts

Revision ID: 0028_chain_facts_tx
Revises: 0027_payment_recorded_amount
"""

from alembic import op

revision = "0028_chain_facts_tx"
down_revision = "0027_payment_recorded_amount"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chain_facts_tx", "chain_facts", ["chain_id", "tx_hash"])


def downgrade() -> None:
    op.drop_index("ix_chain_facts_tx", table_name="chain_facts")
