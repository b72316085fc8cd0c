"""outbox v2: the nullable headers column

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from tthc_common.migrations import add_outbox_headers_column, drop_outbox_headers_column

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_headers_column()


def downgrade() -> None:
    drop_outbox_headers_column()
