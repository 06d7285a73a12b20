"""aggregator: sequential offer nonces per quote signer and CreditAggregator

Revision ID: 0006_offer_nonces
Revises: 0005_providers
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_offer_nonces"
down_revision = "0005_providers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offer_nonces",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "contract", "signer", name=op.f("pk_offer_nonces")),
    )


def downgrade() -> None:
    op.drop_table("offer_nonces")
