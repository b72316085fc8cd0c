"""Deadline service: each dossier row keeps the Kafka partition of its events, so that time passes for a
dossier at its own partition's pace (a partition read ahead of another does not make the other's dossiers
overdue before their own later events are read).

Revision ID: deadline_0005
Revises: deadline_0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "deadline_0005"
down_revision = "deadline_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deadline_dossiers") as batch:
        batch.add_column(sa.Column("event_partition", sa.Integer(), nullable=True))
    op.create_index("ix_deadline_dossiers_partition_next_moment_at", "deadline_dossiers",
                    ["event_partition", "next_moment_at"])


def downgrade() -> None:
    op.drop_index("ix_deadline_dossiers_partition_next_moment_at", table_name="deadline_dossiers")
    with op.batch_alter_table("deadline_dossiers") as batch:
        batch.drop_column("event_partition")
