"""Deadline service: outbox v2 (the nullable headers column), so the dead-letter records of receipt
conflicts go through the common outbox.

Revision ID: deadline_0002
Revises: deadline_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from tthc_common.migrations import add_outbox_headers_column, drop_outbox_headers_column

revision = "deadline_0002"
down_revision = "deadline_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_headers_column()


def downgrade() -> None:
    drop_outbox_headers_column()
