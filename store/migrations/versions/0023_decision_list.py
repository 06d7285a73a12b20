"""decisions: the credit request a compliance decision was made for, and (decided_at, id) indexes for the
decisions list's pages (GET /v1/decisions)

Revision ID: 0023_decision_list
Revises: 0022_outbox_retractions
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_decision_list"
down_revision = "0022_outbox_retractions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_compliance_decisions_request_id", ["request_id"])
        batch.create_index("ix_compliance_decisions_decided_at_decision_id", ["decided_at", "decision_id"])
    op.create_index("ix_risk_decisions_decided_at_id", "risk_decisions", ["decided_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_risk_decisions_decided_at_id", table_name="risk_decisions")
    with op.batch_alter_table("compliance_decisions") as batch:
        batch.drop_index("ix_compliance_decisions_decided_at_decision_id")
        batch.drop_index("ix_compliance_decisions_request_id")
        batch.drop_column("request_id")
