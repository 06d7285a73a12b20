"""compliance: a sealed identity names the KYC applicant it was submitted with (``applicant_id``), whose verdict
alone is the borrower's KYC status: a late verdict on an older applicant is kept but no longer made current (it
verified the identity submitted then, not the one on file). Existing identities are tied to their subject's newest
applicant, the one read as current before.

Revision ID: 0031_identity_kyc_applicant
Revises: 0030_sanctions_review_identity
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_identity_kyc_applicant"
down_revision = "0030_sanctions_review_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compliance_identities") as batch:
        batch.add_column(sa.Column("applicant_id", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE compliance_identities SET applicant_id = ("
        " SELECT a.applicant_id FROM compliance_kyc_applicants a"
        " WHERE a.subject_id = compliance_identities.subject_id"
        " ORDER BY a.updated_at DESC, a.applicant_id DESC LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("compliance_identities") as batch:
        batch.drop_column("applicant_id")
