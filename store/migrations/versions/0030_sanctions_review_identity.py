"""compliance: sanctions reviews of a name not screened in Latin script, held for a person with no SDN entry to
review: a row per borrower identity (``kind`` name-not-screened, ``ent_num`` NULL, the identity's keyed fingerprint in
``entry_fingerprint``; no listed name, program or score), one per identity by a partial unique index

Revision ID: 0030_sanctions_review_identity
Revises: 0029_sanctions_address_lists
"""

import sqlalchemy as sa
from alembic import op

revision = "0030_sanctions_review_identity"
down_revision = "0029_sanctions_address_lists"
branch_labels = None
depends_on = None

_ENTRY_LESS = sa.text("ent_num IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("sanctions_reviews") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=24), server_default="sdn-entry", nullable=False))
        batch.alter_column("ent_num", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("listed_name", existing_type=sa.String(length=512), nullable=True)
        batch.alter_column("primary_name", existing_type=sa.String(length=512), nullable=True)
        batch.alter_column("program", existing_type=sa.String(length=256), nullable=True)
        batch.alter_column("score", existing_type=sa.Float(), nullable=True)
    op.create_index(
        "uq_sanctions_reviews_identity",
        "sanctions_reviews",
        ["borrower_id", "entry_fingerprint"],
        unique=True,
        sqlite_where=_ENTRY_LESS,
        postgresql_where=_ENTRY_LESS,
    )


def downgrade() -> None:
    op.drop_index("uq_sanctions_reviews_identity", table_name="sanctions_reviews")
    op.execute("DELETE FROM sanctions_reviews WHERE ent_num IS NULL")  # no entry: the old table cannot hold them
    with op.batch_alter_table("sanctions_reviews") as batch:
        batch.alter_column("score", existing_type=sa.Float(), nullable=False)
        batch.alter_column("program", existing_type=sa.String(length=256), nullable=False)
        batch.alter_column("primary_name", existing_type=sa.String(length=512), nullable=False)
        batch.alter_column("listed_name", existing_type=sa.String(length=512), nullable=False)
        batch.alter_column("ent_num", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("kind")
