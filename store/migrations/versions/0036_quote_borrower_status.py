"""aggregator: quotes indexed by borrower and status. A credit request reads the borrower's accepts in flight (its
quotes ``accepting``) for the exposure check; by the borrower's index alone that read went through every quote the
borrower was ever shown — about thirteen a request — and a request's CPU grew with the borrower's history.

Revision ID: 0036_quote_borrower_status
Revises: 0035_kyc_review_time
"""

from alembic import op

revision = "0036_quote_borrower_status"
down_revision = "0035_kyc_review_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_quotes_borrower_status", "quotes", ["borrower_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_quotes_borrower_status", table_name="quotes")
