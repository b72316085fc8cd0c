"""Metrics service v1: dossier event log, per-dossier summaries, first apologies, watermarks.

Revision ID: metrics_0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tthc_common.migrations import create_processed_events_table

revision = "metrics_0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here on purpose (not imported from models.py): this revision must keep meaning what it meant.
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_processed_events_table()
    op.create_table(
        "metrics_dossier_events",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UTC_TS, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("stored_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id"),
    )
    op.create_index("ix_metrics_dossier_events_dossier_time", "metrics_dossier_events",
                    ["dossier_id", "occurred_at"])
    op.create_index("ix_metrics_dossier_events_occurred_at", "metrics_dossier_events", ["occurred_at"])
    op.create_table(
        "metrics_dossier_summaries",
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTC_TS, nullable=True),
        sa.Column("closed_at", UTC_TS, nullable=True),
        sa.Column("closed_state", sa.JSON(), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_index("ix_metrics_dossier_summaries_received_at", "metrics_dossier_summaries", ["received_at"])
    op.create_index("ix_metrics_dossier_summaries_closed_at", "metrics_dossier_summaries", ["closed_at"])
    op.create_table(
        "metrics_first_apologies",
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at", UTC_TS, nullable=False),
        sa.Column("apology_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_table(
        "metrics_watermarks",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("stream"),
    )


def downgrade() -> None:
    op.drop_table("metrics_watermarks")
    op.drop_table("metrics_first_apologies")
    op.drop_index("ix_metrics_dossier_summaries_closed_at", table_name="metrics_dossier_summaries")
    op.drop_index("ix_metrics_dossier_summaries_received_at", table_name="metrics_dossier_summaries")
    op.drop_table("metrics_dossier_summaries")
    op.drop_index("ix_metrics_dossier_events_occurred_at", table_name="metrics_dossier_events")
    op.drop_index("ix_metrics_dossier_events_dossier_time", table_name="metrics_dossier_events")
    op.drop_table("metrics_dossier_events")
    op.drop_table("processed_events")
