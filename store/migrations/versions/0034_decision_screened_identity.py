"""compliance: a screening decision (credit request, acceptance) keeps the identity it screened
(``compliance_decisions.screened_identity``: the keyed fingerprint of the borrower id, the name exactly as screened
and the date of birth, as the sanctions reviews keep it), beside the record and outside its hashed body, so a
borrower's screening status can tell an identity verified since (``POST /v1/borrowers/me/kyc``) from one screened.
Decisions recorded before keep NULL: their record hashes and audit entries are unchanged.

Revision ID: 0034_decision_screened_identity
Revises: 0033_review_hit_identity
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_decision_screened_identity"
down_revision = "0033_review_hit_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.add_column(sa.Column("screened_identity", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.drop_column("screened_identity")
