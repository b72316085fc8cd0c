"""apology_dossiers, apologies, apology_number_counters, processed_events, outbox

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

import sqlalchemy as sa
from alembic import op

from tthc_common.migrations import create_outbox_table, create_processed_events_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_processed_events_table()
    create_outbox_table()
    op.create_table(
        "apology_dossiers",
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("received_event", sa.Text(), nullable=True),
        sa.Column("received_event_id", sa.String(length=64), nullable=True),
        sa.Column("received_occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extensions", sa.Text(), nullable=False),
        sa.Column("apology_given_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_table(
        "apologies",
        sa.Column("apology_id", sa.String(length=64), nullable=False),
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_code", sa.String(length=64), nullable=False),
        sa.Column("agency_name", sa.Text(), nullable=False),
        sa.Column("proposed_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("drafted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("number_year", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("new_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("issued_by_key", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("apology_id"),
        sa.UniqueConstraint("dossier_id", "kind", "due_at", name="uq_apologies_dossier_kind_due"),
        sa.UniqueConstraint("agency_code", "number_year", "number", name="uq_apologies_agency_year_number"),
    )
    op.create_index("ix_apologies_dossier_id", "apologies", ["dossier_id"])
    op.create_index("ix_apologies_agency_status_due", "apologies", ["agency_code", "status", "due_at"])
    op.create_table(
        "apology_number_counters",
        sa.Column("agency_code", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agency_code", "year"),
    )


def downgrade() -> None:
    op.drop_table("apology_number_counters")
    op.drop_index("ix_apologies_agency_status_due", table_name="apologies")
    op.drop_index("ix_apologies_dossier_id", table_name="apologies")
    op.drop_table("apologies")
    op.drop_table("apology_dossiers")
    op.drop_table("outbox")
    op.drop_table("processed_events")
