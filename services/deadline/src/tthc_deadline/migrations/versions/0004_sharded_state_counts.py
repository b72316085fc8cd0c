"""Deadline service: the state counts kept per shard (the Kafka partition whose consumer changed them, or
`sweep`), summed when read, so that replicas consuming different partitions never wait on one counter row.
The counts already kept become shard `sweep`.

Revision ID: deadline_0004
Revises: deadline_0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "deadline_0004"
down_revision = "deadline_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadline_state_counts_v2",
        sa.Column("shard", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(32), primary_key=True),
        sa.Column("dossiers", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO deadline_state_counts_v2 (shard, state, dossiers) "
               "SELECT 'sweep', state, dossiers FROM deadline_state_counts")
    op.drop_table("deadline_state_counts")
    op.rename_table("deadline_state_counts_v2", "deadline_state_counts")


def downgrade() -> None:
    op.create_table(
        "deadline_state_counts_v1",
        sa.Column("state", sa.String(32), primary_key=True),
        sa.Column("dossiers", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO deadline_state_counts_v1 (state, dossiers) "
               "SELECT state, sum(dossiers) FROM deadline_state_counts GROUP BY state")
    op.drop_table("deadline_state_counts")
    op.rename_table("deadline_state_counts_v1", "deadline_state_counts")
