"""intake_dvcqg_steps: the national portal's progress steps intake accepted, per source and dossier

Revision ID: 0002
Revises: 0001
Create Date: 2026-04-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_dvcqg_steps",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("dossier_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("step", sa.JSON(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "dossier_id", "at", "status"),
    )


def downgrade() -> None:
    op.drop_table("intake_dvcqg_steps")
