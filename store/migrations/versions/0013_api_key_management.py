"""api: key management — a public key id (the OAuth2 client id), expiry, revocation, the bootstrap admin key marked

Keys issued before this revision get the id ``key_`` + the first 16 hex digits of their hash; the key stored as
"bootstrap admin" is marked as the bootstrap key, so the next start with a different ``CREDITMESH_ADMIN_API_KEY``
revokes it.

Revision ID: 0013_api_key_management
Revises: 0012_accepts
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0013_api_key_management"
down_revision = "0012_accepts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("expires_at", store.types.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", store.types.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("bootstrap", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE api_keys SET key_id = 'key_' || substr(key_hash, 1, 16)")
    op.execute("UPDATE api_keys SET bootstrap = true WHERE label = 'bootstrap admin'")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_id", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint(batch.f("uq_api_keys_key_id"), ["key_id"])
        batch.create_index(batch.f("ix_api_keys_role"), ["role"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(batch.f("ix_api_keys_role"))
        batch.drop_constraint(batch.f("uq_api_keys_key_id"), type_="unique")
        batch.drop_column("bootstrap")
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
        batch.drop_column("key_id")
