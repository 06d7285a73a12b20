"""compliance: a review of an SDN entry hit is tied to the borrower identity screened (``identity_fingerprint``: the
keyed fingerprint of the borrower id, the name exactly as screened and the date of birth), so that a reviewer's
clearance holds for that identity only and a borrower who verifies another name or date of birth is screened afresh.
One review per borrower, entry version and identity. Reviews stored before keep a NULL identity: their clearances
clear nothing (the next screening of such a borrower's hit is held, and reviewed, again); their confirmations still
block.

Revision ID: 0033_review_hit_identity
Revises: 0032_quote_provider_ref
"""

import sqlalchemy as sa
from alembic import op

revision = "0033_review_hit_identity"
down_revision = "0032_quote_provider_ref"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sanctions_reviews") as batch:
        batch.add_column(sa.Column("identity_fingerprint", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_sanctions_reviews_entry", type_="unique")
        batch.create_unique_constraint(
            "uq_sanctions_reviews_entry", ["borrower_id", "ent_num", "entry_fingerprint", "identity_fingerprint"]
        )
    # a name-not-screened review is of an identity already: its entry fingerprint is the identity's
    op.execute("UPDATE sanctions_reviews SET identity_fingerprint = entry_fingerprint WHERE ent_num IS NULL")


def downgrade() -> None:
    # the old key holds one review per borrower and entry version: a confirmed one, else the newest, stays
    op.execute(
        "DELETE FROM sanctions_reviews WHERE ent_num IS NOT NULL AND id NOT IN (SELECT id FROM ("
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY borrower_id, ent_num, entry_fingerprint ORDER BY "
        "CASE state WHEN 'confirmed' THEN 0 ELSE 1 END, created_at DESC, id DESC) AS n "
        "FROM sanctions_reviews WHERE ent_num IS NOT NULL) AS ranked WHERE n = 1)"
    )
    with op.batch_alter_table("sanctions_reviews") as batch:
        batch.drop_constraint("uq_sanctions_reviews_entry", type_="unique")
        batch.create_unique_constraint("uq_sanctions_reviews_entry", ["borrower_id", "ent_num", "entry_fingerprint"])
        batch.drop_column("identity_fingerprint")
