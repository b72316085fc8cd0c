"""Alembic environment of the metrics service (its own history, version table alembic_version_metrics)."""

import tthc_metrics.models  # noqa: F401  (registers the tables)
from sqlmodel import SQLModel
from tthc_common.migrations import run_alembic_env

run_alembic_env(SQLModel.metadata, "metrics")
