"""ledger: leases, chain facts, the loan ledger's columns and entries

Revision ID: 0007_ledger
Revises: 0006_offer_nonces
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0007_ledger"
down_revision = "0006_offer_nonces"
branch_labels = None
depends_on = None

_LOAN_COLUMNS = (
    ("block_hash", sa.String(length=66)),
    ("borrower_address", sa.String(length=42)),
    ("asset_address", sa.String(length=42)),
    ("funder", sa.String(length=66)),
    ("pool", sa.String(length=42)),
    ("rate_bps", sa.Integer()),
    ("term_seconds", sa.BigInteger()),
    ("origination_fee", store.types.Uint256(length=78)),
    ("terms_hash", sa.String(length=66)),
    ("outstanding_principal", store.types.Uint256(length=78)),
    ("interest_paid", store.types.Uint256(length=78)),
    ("principal_paid", store.types.Uint256(length=78)),
    ("collateral_asset", sa.String(length=42)),
    ("collateral_amount", store.types.Uint256(length=78)),
    ("closed_tx_hash", sa.String(length=66)),
)


def _entry_table(name: str, *columns: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("loan_id", sa.String(length=36), nullable=False),
        sa.Column("fact_id", sa.Integer(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f(f"fk_{name}_loan_id_loans"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["fact_id"], ["chain_facts.id"], name=op.f(f"fk_{name}_fact_id_chain_facts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("fact_id", name=op.f(f"uq_{name}_fact_id")),
    )
    op.create_index(op.f(f"ix_{name}_loan_id"), name, ["loan_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "chain_id", name=op.f("pk_leases")),
    )
    op.create_table(
        "chain_facts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("loan_ref", store.types.Uint256(length=78), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_facts")),
        sa.UniqueConstraint("chain_id", "block_hash", "tx_hash", "log_index", name="uq_chain_facts_log"),
    )
    op.create_index("ix_chain_facts_block", "chain_facts", ["chain_id", "block_number"], unique=False)
    op.create_index("ix_chain_facts_loan", "chain_facts", ["chain_id", "loan_ref"], unique=False)

    with op.batch_alter_table("loans") as batch:
        batch.alter_column("quote_id", existing_type=sa.String(length=36), nullable=True)
        batch.alter_column("borrower_id", existing_type=sa.String(length=36), nullable=True)
        batch.alter_column("provider_id", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("asset", existing_type=sa.String(length=16), type_=sa.String(length=42))
        batch.add_column(sa.Column("offer_digest", sa.String(length=66), nullable=True))
        for name, column_type in _LOAN_COLUMNS:
            batch.add_column(sa.Column(name, column_type, nullable=True))
        batch.add_column(sa.Column("opened_outside_accept", sa.Boolean(), nullable=False, server_default=sa.false()))
    # a loan recorded before the ledger: its offer digest is its quote's
    op.execute(
        "UPDATE loans SET offer_digest = (SELECT quotes.offer_digest FROM quotes WHERE quotes.id = loans.quote_id)"
    )
    with op.batch_alter_table("loans") as batch:
        batch.alter_column("offer_digest", existing_type=sa.String(length=66), nullable=False)
        batch.create_unique_constraint("uq_loans_offer", ["chain_id", "contract", "offer_digest"])
        batch.create_unique_constraint("uq_loans_onchain_loan", ["chain_id", "contract", "onchain_loan_id"])

    _entry_table(
        "loan_repayments",
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("interest_paid", store.types.Uint256(length=78), nullable=False),
        sa.Column("principal_paid", store.types.Uint256(length=78), nullable=False),
        sa.Column("outstanding_principal", store.types.Uint256(length=78), nullable=False),
        sa.Column("payment_ref", sa.String(length=66), nullable=False),
    )
    _entry_table(
        "loan_collateral_movements",
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("asset", sa.String(length=42), nullable=False),
        sa.Column("amount", store.types.Uint256(length=78), nullable=False),
    )
    _entry_table(
        "loan_liquidations",
        sa.Column("liquidator", sa.String(length=42), nullable=False),
        sa.Column("debt_repaid", store.types.Uint256(length=78), nullable=False),
        sa.Column("collateral_seized", store.types.Uint256(length=78), nullable=False),
    )


def downgrade() -> None:
    for name in ("loan_liquidations", "loan_collateral_movements", "loan_repayments"):
        op.drop_index(op.f(f"ix_{name}_loan_id"), table_name=name)
        op.drop_table(name)
    with op.batch_alter_table("loans") as batch:
        batch.drop_constraint("uq_loans_onchain_loan", type_="unique")
        batch.drop_constraint("uq_loans_offer", type_="unique")
        batch.drop_column("opened_outside_accept")
        for name, _ in reversed(_LOAN_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("offer_digest")
        batch.alter_column("asset", existing_type=sa.String(length=42), type_=sa.String(length=16))
    op.drop_index("ix_chain_facts_loan", table_name="chain_facts")
    op.drop_index("ix_chain_facts_block", table_name="chain_facts")
    op.drop_table("chain_facts")
    op.drop_table("leases")
