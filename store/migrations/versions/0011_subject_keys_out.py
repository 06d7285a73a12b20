"""subject keys out of the platform database: they live in a key store of their own (store.keystore, compliance.kms)

The wrapped keys kept here until now are dropped, not moved: a migration cannot reach the new key store, and a key
left in this database is exactly what the move is for (a backup plus the master key would open the identities).
Identities sealed under a dropped key read as erased; their borrowers verify again.

Revision ID: 0011_subject_keys_out
Revises: 0010_sanctions_name_lists
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0011_subject_keys_out"
down_revision = "0010_sanctions_name_lists"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("compliance_subject_keys")


def downgrade() -> None:
    op.create_table(
        "compliance_subject_keys",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_compliance_subject_keys")),
    )
