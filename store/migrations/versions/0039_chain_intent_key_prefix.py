"""chain: intents indexed for a read by their key's prefix. Every attempt of a loan's operator intent (a payment's
record, a markDefault, a hold, a claim) is read by its key's prefix (``ChainRepository.numbered_intents``), and the
default job's held loans so too; on PostgreSQL under a collation other than C the primary key's index cannot serve a
``LIKE 'prefix%'``, so each such read went through every intent the platform ever sent. ``text_pattern_ops`` can.

Revision ID: 0039_chain_intent_key_prefix
Revises: 0038_offchain_payments_contract
"""

from alembic import op

revision = "0039_chain_intent_key_prefix"
down_revision = "0038_offchain_payments_contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chain_intents_key_prefix", "chain_intents", ["key"], postgresql_ops={"key": "text_pattern_ops"})


def downgrade() -> None:
    op.drop_index("ix_chain_intents_key_prefix", table_name="chain_intents")
