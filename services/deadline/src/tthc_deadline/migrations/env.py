"""Alembic environment of the deadline service (its own history, version table alembic_version_deadline)."""

from sqlmodel import SQLModel

import tthc_deadline.models  # noqa: F401  (registers the tables)
from tthc_common.migrations import run_alembic_env

run_alembic_env(SQLModel.metadata, "deadline")
