"""aggregator: a quote's ``provider_ref`` (the lender's own reference of the offer, ``providerRef`` in its offer) is
a column of its own, indexed with the provider: a lender's webhook and its off-chain payments find the offer's quotes
by it, which read every quote's offer document before. Existing quotes take it from their offers.

Revision ID: 0032_quote_provider_ref
Revises: 0031_identity_kyc_applicant
"""

import sqlalchemy as sa
from alembic import op

revision = "0032_quote_provider_ref"
down_revision = "0031_identity_kyc_applicant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quotes") as batch:
        batch.add_column(sa.Column("provider_ref", sa.String(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE quotes SET provider_ref = offer ->> 'providerRef'")
    else:
        op.execute("UPDATE quotes SET provider_ref = CAST(json_extract(offer, '$.providerRef') AS TEXT)")
    op.create_index("ix_quotes_provider_ref", "quotes", ["provider_id", "provider_ref"])


def downgrade() -> None:
    op.drop_index("ix_quotes_provider_ref", table_name="quotes")
    with op.batch_alter_table("quotes") as batch:
        batch.drop_column("provider_ref")
