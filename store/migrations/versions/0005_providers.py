"""providers: registrations made through the API, accepted webhook events, refused-input incidents

Revision ID: 0005_providers
Revises: 0004_chain
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0005_providers"
down_revision = "0004_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_registrations",
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=True),
        sa.Column("resilience", sa.JSON(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", name=op.f("pk_provider_registrations")),
    )
    op.create_table(
        "provider_webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("offer_ref", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_webhook_events")),
        sa.UniqueConstraint("provider_id", "event_id", name="uq_provider_webhook_events_event"),
    )
    op.create_index(
        op.f("ix_provider_webhook_events_provider_id"), "provider_webhook_events", ["provider_id"], unique=False
    )
    op.create_table(
        "provider_incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("at", store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_incidents")),
    )
    op.create_index(op.f("ix_provider_incidents_provider_id"), "provider_incidents", ["provider_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_incidents_provider_id"), table_name="provider_incidents")
    op.drop_table("provider_incidents")
    op.drop_index(op.f("ix_provider_webhook_events_provider_id"), table_name="provider_webhook_events")
    op.drop_table("provider_webhook_events")
    op.drop_table("provider_registrations")
