"""foundation: borrowers, api keys, credit requests, provider outcomes, quotes, loans

Revision ID: 0001_foundation
Revises:
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "borrowers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("wallet_address", sa.String(length=42), nullable=False),
        sa.Column("jurisdiction", sa.String(length=8), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_borrowers")),
        sa.UniqueConstraint("wallet_address", name=op.f("uq_borrowers_wallet_address")),
    )
    op.create_table(
        "credit_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=36), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("term_days", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("collateral_asset", sa.String(length=16), nullable=False),
        sa.Column("collateral_amount", sa.String(length=80), nullable=False),
        sa.Column("preferred_chains", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("risk", sa.JSON(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["borrower_id"], ["borrowers.id"], name=op.f("fk_credit_requests_borrower_id_borrowers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_requests")),
    )
    with op.batch_alter_table("credit_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_requests_borrower_id"), ["borrower_id"], unique=False)

    op.create_table(
        "provider_outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["credit_requests.id"], name=op.f("fk_provider_outcomes_request_id_credit_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_outcomes")),
    )
    with op.batch_alter_table("provider_outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_outcomes_request_id"), ["request_id"], unique=False)

    op.create_table(
        "quotes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("offer", sa.JSON(), nullable=False),
        sa.Column("offer_digest", sa.String(length=66), nullable=False),
        sa.Column("offer_signature", sa.String(length=132), nullable=False),
        sa.Column("attestation", sa.JSON(), nullable=False),
        sa.Column("attestation_signature", sa.String(length=132), nullable=False),
        sa.Column("disclosure", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["borrower_id"], ["borrowers.id"], name=op.f("fk_quotes_borrower_id_borrowers")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["credit_requests.id"], name=op.f("fk_quotes_request_id_credit_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("offer_digest", name=op.f("uq_quotes_offer_digest")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quotes_borrower_id"), ["borrower_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quotes_request_id"), ["request_id"], unique=False)

    op.create_table(
        "loans",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("borrower_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("chain_name", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("onchain_loan_id", store.types.Uint256(length=78), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("principal", store.types.Uint256(length=78), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["borrower_id"], ["borrowers.id"], name=op.f("fk_loans_borrower_id_borrowers")),
        sa.ForeignKeyConstraint(["quote_id"], ["quotes.id"], name=op.f("fk_loans_quote_id_quotes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_loans_quote_id")),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loans_borrower_id"), ["borrower_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loans_borrower_id"))

    op.drop_table("loans")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quotes_request_id"))
        batch_op.drop_index(batch_op.f("ix_quotes_borrower_id"))

    op.drop_table("quotes")
    with op.batch_alter_table("provider_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_outcomes_request_id"))

    op.drop_table("provider_outcomes")
    with op.batch_alter_table("credit_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_requests_borrower_id"))

    op.drop_table("credit_requests")
    op.drop_table("borrowers")
    op.drop_table("api_keys")
