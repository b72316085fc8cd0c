"""The body of every service's Alembic `env.py`, so that each one is three lines:

    from sqlmodel import SQLModel
    import tthc_deadline.models  # noqa: F401  (registers the tables)
    from tthc_common.migrations import run_alembic_env; run_alembic_env(SQLModel.metadata, "deadline")

Each service has its own history and its own version table (`alembic_version_<service>`), so two
services may even share one PostgreSQL database without stepping on each other's revisions.

The common tables are created by frozen helpers (`create_processed_events_table`,
`create_outbox_table`) that a service's first migration calls; a later change to them comes as a
new helper (`add_outbox_headers_column`, outbox v2), never as an edit of these, so old revisions keep
meaning what they meant.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import MetaData


def version_table_name(service_name: str) -> str:
    return f"alembic_version_{service_name}"


def run_alembic_env(target_metadata: MetaData, service_name: str) -> None:
    """Run the migrations of the current Alembic invocation (online, or offline to print SQL)."""
    from alembic import context

    from .db import make_engine

    config = context.config
    version_table = version_table_name(service_name)
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set (run_migrations() or alembic.ini sets it)")

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                          version_table=version_table, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                version_table=version_table,
                # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


# ---- frozen DDL of the common tables (v1), for the services' first migrations -------------------

def create_processed_events_table() -> None:
    """`processed_events` v1 (see `tthc_common.idempotency.ProcessedEvent`)."""
    from alembic import op

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "source", "event_id"),
    )


def create_outbox_table() -> None:
    """`outbox` v1 (see `tthc_common.outbox.OutboxMessage`)."""
    from alembic import op

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


# ---- frozen DDL of later versions of the common tables -------------------------------------------

def add_outbox_headers_column() -> None:
    """`outbox` v2: the nullable `headers` column (Kafka headers as a JSON object)."""
    from alembic import op

    with op.batch_alter_table("outbox") as batch:  # SQLite: batch mode
        batch.add_column(sa.Column("headers", sa.Text(), nullable=True))


def drop_outbox_headers_column() -> None:
    """`outbox` v2 -> v1 (a downgrade): the rows still queued lose their headers."""
    from alembic import op

    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("headers")
