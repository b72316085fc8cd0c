"""Metrics service v3: the figures of a current period from kept counts, not from every dossier's state.

`metrics_counts` adds up the receipts' and the closes' facts per month, group, working-day length and
shard; each dossier row keeps what it adds there (`counted`, `counted_basis`) and the instants its open
facts change at (`overdue_after`, `i766_late_after`), with a partial index on the open dossiers;
`metrics_counts_basis` says which calendar the counts agree with; `metrics_group_names` keeps the names of
the codes. Existing rows have nothing counted yet: the service counts them from their stored states when it
starts (`units.count_dossiers`), reading the figures from the states until then.

Revision ID: metrics_0003
Revises: metrics_0002
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "metrics_0003"
down_revision = "metrics_0002"
branch_labels = None
depends_on = None

# Frozen here on purpose (not imported from models.py or tthc_core): this revision must keep meaning what
# it meant.
UTC_TS = sa.DateTime(timezone=True)
COUNT_COLUMNS = (
    "handled", "received", "closed", "early", "on_time", "late", "open_overdue", "open_within",
    "i766_on_time", "closed_without_request", "closed_at_most_one_request", "contact_points",
    "late_with_apology", "late_apology_timely", "processed", "appointment_checked", "appointment_later",
    "appointment_earlier", "online_received", "processing_us",
)  # fmt: skip
OPEN_DOSSIERS = "closed_at IS NULL AND received_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "metrics_counts",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("agency", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("procedure", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("day_length_us", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shard", sa.String(length=32), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in COUNT_COLUMNS),
        sa.PrimaryKeyConstraint("month", "agency", "field", "procedure", "channel", "day_length_us", "shard"),
    )
    op.create_table(
        "metrics_counts_basis",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("counted_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "metrics_group_names",
        sa.Column("shard", sa.String(length=32), nullable=False),
        sa.Column("grouping", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("received_at", UTC_TS, nullable=False),
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("shard", "grouping", "code"),
    )
    # plain ADD COLUMN (nullable, no default) on both databases: no rewrite of a large table
    op.add_column("metrics_dossiers", sa.Column("overdue_after", UTC_TS, nullable=True))
    op.add_column("metrics_dossiers", sa.Column("i766_late_after", UTC_TS, nullable=True))
    op.add_column("metrics_dossiers", sa.Column("counted", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("metrics_dossiers", sa.Column("counted_basis", sa.String(length=64), nullable=True))
    op.create_index("ix_metrics_dossiers_open", "metrics_dossiers",
                    ["handling_agency", "field_code", "procedure_code", "channel", "overdue_after",
                     "i766_late_after"],
                    postgresql_where=sa.text(OPEN_DOSSIERS), sqlite_where=sa.text(OPEN_DOSSIERS))


def downgrade() -> None:
    op.drop_index("ix_metrics_dossiers_open", table_name="metrics_dossiers")
    with op.batch_alter_table("metrics_dossiers") as batch:
        for name in ("counted_basis", "counted", "i766_late_after", "overdue_after"):
            batch.drop_column(name)
    op.drop_table("metrics_group_names")
    op.drop_table("metrics_counts_basis")
    op.drop_table("metrics_counts")
