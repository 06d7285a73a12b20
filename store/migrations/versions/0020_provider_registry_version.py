"""providers: the registrations' change counter every process polls (a registration seen by all within a second)

Revision ID: 0020_provider_registry_version
Revises: 0019_governance_actions
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_provider_registry_version"
down_revision = "0019_governance_actions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "provider_registry_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_registry_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("provider_registry_version")
