"""chain: transaction intents and attempts, nonce counters and released nonces, event checkpoints and block
hashes, reorg reports, chain-selection decisions

Revision ID: 0004_chain
Revises: 0003_risk
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0004_chain"
down_revision = "0003_risk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_intents",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("value", store.types.Uint256(length=78), nullable=False),
        sa.Column("gas", sa.BigInteger(), nullable=True),
        sa.Column("payload_hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("contract_address", sa.String(length=42), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_chain_intents")),
    )
    op.create_index(op.f("ix_chain_intents_chain_id"), "chain_intents", ["chain_id"], unique=False)
    op.create_index(op.f("ix_chain_intents_status"), "chain_intents", ["status"], unique=False)
    op.create_table(
        "chain_tx_attempts",
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("intent_key", sa.String(length=200), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", store.types.Uint256(length=78), nullable=False),
        sa.Column("max_priority_fee_per_gas", store.types.Uint256(length=78), nullable=False),
        sa.Column("gas", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tx_hash", name=op.f("pk_chain_tx_attempts")),
    )
    op.create_index(op.f("ix_chain_tx_attempts_intent_key"), "chain_tx_attempts", ["intent_key"], unique=False)
    op.create_table(
        "chain_nonces",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "address", name=op.f("pk_chain_nonces")),
    )
    op.create_table(
        "chain_nonce_gaps",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "address", "nonce", name=op.f("pk_chain_nonce_gaps")),
    )
    op.create_table(
        "chain_event_checkpoints",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "reader", name=op.f("pk_chain_event_checkpoints")),
    )
    op.create_table(
        "chain_event_blocks",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "reader", "number", name=op.f("pk_chain_event_blocks")),
    )
    op.create_table(
        "chain_reorgs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_block", sa.BigInteger(), nullable=False),
        sa.Column("ancestor_block", sa.BigInteger(), nullable=False),
        sa.Column("depth", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_reorgs")),
    )
    op.create_index(op.f("ix_chain_reorgs_chain_id"), "chain_reorgs", ["chain_id"], unique=False)
    op.create_table(
        "chain_selections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operation", sa.String(length=128), nullable=False),
        sa.Column("chosen", sa.String(length=64), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_selections")),
    )


def downgrade() -> None:
    op.drop_table("chain_selections")
    op.drop_index(op.f("ix_chain_reorgs_chain_id"), table_name="chain_reorgs")
    op.drop_table("chain_reorgs")
    op.drop_table("chain_event_blocks")
    op.drop_table("chain_event_checkpoints")
    op.drop_table("chain_nonce_gaps")
    op.drop_table("chain_nonces")
    op.drop_index(op.f("ix_chain_tx_attempts_intent_key"), table_name="chain_tx_attempts")
    op.drop_table("chain_tx_attempts")
    op.drop_index(op.f("ix_chain_intents_status"), table_name="chain_intents")
    op.drop_index(op.f("ix_chain_intents_chain_id"), table_name="chain_intents")
    op.drop_table("chain_intents")
