"""chain_facts: a (chain_id, event, block_number) index, for the reads that pick facts by event — the keeper's
collateral-claim sweep (CollateralClaimable, CollateralRemoved) and the indexer's registered pools (PoolRegistered)

Revision ID: 0025_chain_facts_event_index
Revises: 0024_intent_owners
"""

from alembic import op

revision = "0025_chain_facts_event_index"
down_revision = "0024_intent_owners"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chain_facts_event", "chain_facts", ["chain_id", "event", "block_number"])


def downgrade() -> None:
    op.drop_index("ix_chain_facts_event", table_name="chain_facts")
