"""compliance: a KYC applicant keeps the time its stored verdict was reached (``compliance_kyc_applicants.
reviewed_at``: the provider's ``reviewedAt``, else when the verdict was received), so a late redelivery of an older
verdict is ignored instead of overwriting a later one. Verdicts stored before are dated when they were received
(``updated_at``); pending applicants keep NULL.

Revision ID: 0035_kyc_review_time
Revises: 0034_decision_screened_identity
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0035_kyc_review_time"
down_revision = "0034_decision_screened_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compliance_kyc_applicants") as batch:
        batch.add_column(sa.Column("reviewed_at", store.types.UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE compliance_kyc_applicants SET reviewed_at = updated_at WHERE state <> 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("compliance_kyc_applicants") as batch:
        batch.drop_column("reviewed_at")
