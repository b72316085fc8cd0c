"""Metrics service v2: each dossier's folded state kept incrementally, with the figures' columns beside it;
watermarks per stream and Kafka partition.

`metrics_dossier_summaries` (recomputed from the log on every event) and `metrics_first_apologies` give
way to `metrics_dossiers`; `metrics_watermarks` (one row per stream, locked by every event) to
`metrics_partition_watermarks`. The event log stays. Every dossier of the log gets a row without a
state: the service folds those from their logs when it starts (`units.fold_stateless_dossiers`).

Revision ID: metrics_0002
Revises: metrics_0001
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "metrics_0002"
down_revision = "metrics_0001"
branch_labels = None
depends_on = None

# Frozen here on purpose (not imported from models.py): this revision must keep meaning what it meant.
UTC_TS = sa.DateTime(timezone=True)
INSTANTS = ("received_at", "closed_at", "last_event_at", "judged_close", "due_at_receipt", "due_at",
            "at_risk_at", "extended_due_at", "first_extension_at", "stopped_at")


def upgrade() -> None:
    op.create_table(
        "metrics_dossiers",
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False, server_default="0"),
        *(sa.Column(name, UTC_TS, nullable=True) for name in INSTANTS),
        sa.Column("handling_agency", sa.String(length=64), nullable=True),
        sa.Column("handling_agency_name", sa.String(length=300), nullable=True),
        sa.Column("field_code", sa.String(length=64), nullable=True),
        sa.Column("field_name", sa.String(length=300), nullable=True),
        sa.Column("procedure_code", sa.String(length=64), nullable=True),
        sa.Column("procedure_name", sa.String(length=500), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("clock", sa.String(length=32), nullable=True),
        sa.Column("supplement_requests", sa.Integer(), nullable=True),
        sa.Column("processing_days", sa.Float(), nullable=True),
        sa.Column("first_apology_at", UTC_TS, nullable=True),
        sa.Column("first_apology_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_index("ix_metrics_dossiers_received_at", "metrics_dossiers", ["received_at"])
    op.create_index("ix_metrics_dossiers_closed_at", "metrics_dossiers", ["closed_at"])
    op.execute(
        "INSERT INTO metrics_dossiers (dossier_id, event_count) "
        "SELECT dossier_id, count(*) FROM metrics_dossier_events GROUP BY dossier_id")
    op.execute(
        "INSERT INTO metrics_dossiers (dossier_id, event_count) "
        "SELECT dossier_id, 0 FROM metrics_first_apologies "
        "WHERE dossier_id NOT IN (SELECT dossier_id FROM metrics_dossiers)")
    op.execute(
        "UPDATE metrics_dossiers SET "
        "first_apology_at = (SELECT a.issued_at FROM metrics_first_apologies a "
        "WHERE a.dossier_id = metrics_dossiers.dossier_id), "
        "first_apology_id = (SELECT a.apology_id FROM metrics_first_apologies a "
        "WHERE a.dossier_id = metrics_dossiers.dossier_id)")
    op.create_table(
        "metrics_partition_watermarks",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("stream", "partition"),
    )
    # the instant each stream had reached, kept under a partition no consumer has
    op.execute("INSERT INTO metrics_partition_watermarks (stream, partition, at) "
               "SELECT stream, -1, at FROM metrics_watermarks")
    op.drop_table("metrics_watermarks")
    op.drop_table("metrics_first_apologies")
    op.drop_index("ix_metrics_dossier_summaries_closed_at", table_name="metrics_dossier_summaries")
    op.drop_index("ix_metrics_dossier_summaries_received_at", table_name="metrics_dossier_summaries")
    op.drop_table("metrics_dossier_summaries")


def downgrade() -> None:
    raise NotImplementedError("metrics_0002 is not reversible: restore a backup of the metrics database")
