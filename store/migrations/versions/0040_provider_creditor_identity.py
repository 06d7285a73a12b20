"""provider_registrations: the creditor a lender registered through the API lends as — its legal name and postal
address — which the adverse-action notices given for it name (12 CFR 1002.9(g): a notice given by a third party for
several creditors discloses each one's identity; a provider id is not one). Rows registered before have neither
(NULL): their notices say the lender's identity is not on file; a pool never has one (no legal person).

Revision ID: 0040_provider_creditor_identity
Revises: 0039_chain_intent_key_prefix
"""

import sqlalchemy as sa
from alembic import op

revision = "0040_provider_creditor_identity"
down_revision = "0039_chain_intent_key_prefix"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_registrations") as batch:
        batch.add_column(sa.Column("legal_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("postal_address", sa.String(length=400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_registrations") as batch:
        batch.drop_column("postal_address")
        batch.drop_column("legal_name")
