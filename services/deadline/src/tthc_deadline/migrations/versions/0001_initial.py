"""Deadline service, first schema: event log, dossier states, watermark, receipt conflicts,
plus the common processed_events and outbox tables.

Revision ID: deadline_0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tthc_common.migrations import create_outbox_table, create_processed_events_table

revision = "deadline_0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Instant = sa.DateTime(timezone=True)  # UTC (tthc_common.types.UtcDateTime)


def upgrade() -> None:
    create_processed_events_table()
    create_outbox_table()

    op.create_table(
        "deadline_event_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", Instant, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("ignored", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("ignored_reason", sa.Text(), nullable=True),
        sa.Column("kafka_topic", sa.String(255), nullable=True),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", Instant, nullable=False),
        sa.UniqueConstraint("source", "event_id", name="uq_deadline_event_log_source_event"),
    )
    op.create_index("ix_deadline_event_log_dossier_id", "deadline_event_log", ["dossier_id"])

    op.create_table(
        "deadline_dossiers",
        sa.Column("dossier_id", sa.String(64), primary_key=True),
        sa.Column("handling_agency", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("next_moment_at", Instant, nullable=True),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("due_at", Instant, nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("calendar_version", sa.String(64), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_index("ix_deadline_dossiers_agency_state", "deadline_dossiers", ["handling_agency", "state"])
    op.create_index("ix_deadline_dossiers_state", "deadline_dossiers", ["state"])
    op.create_index("ix_deadline_dossiers_next_moment_at", "deadline_dossiers", ["next_moment_at"])

    op.create_table(
        "deadline_watermark",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )

    op.create_table(
        "deadline_receipt_conflicts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("winner_source", sa.String(64), nullable=False),
        sa.Column("winner_event_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("kafka_topic", sa.String(255), nullable=True),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", Instant, nullable=False),
        sa.Column("published_at", Instant, nullable=True),
        sa.UniqueConstraint("source", "event_id", name="uq_deadline_receipt_conflicts_source_event"),
    )
    op.create_index("ix_deadline_receipt_conflicts_dossier_id", "deadline_receipt_conflicts", ["dossier_id"])
    op.create_index("ix_deadline_receipt_conflicts_published_at", "deadline_receipt_conflicts", ["published_at"])


def downgrade() -> None:
    op.drop_table("deadline_receipt_conflicts")
    op.drop_table("deadline_watermark")
    op.drop_table("deadline_dossiers")
    op.drop_table("deadline_event_log")
    op.drop_table("outbox")
    op.drop_table("processed_events")
