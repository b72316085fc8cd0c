"""Deadline service: the number of dossiers in each state, kept by the transactions that change a
dossier's state, so the state gauges read a few rows instead of counting every dossier on every tick.
Filled from the dossiers already stored.

Revision ID: deadline_0003
Revises: deadline_0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "deadline_0003"
down_revision = "deadline_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deadline_state_counts",
        sa.Column("state", sa.String(32), primary_key=True),
        sa.Column("dossiers", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO deadline_state_counts (state, dossiers) "
               "SELECT state, count(*) FROM deadline_dossiers GROUP BY state")


def downgrade() -> None:
    op.drop_table("deadline_state_counts")
