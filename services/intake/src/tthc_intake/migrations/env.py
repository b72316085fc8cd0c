import tthc_intake.models  # noqa: F401  (registers intake's tables in SQLModel.metadata)
from sqlmodel import SQLModel
from tthc_common.migrations import run_alembic_env

run_alembic_env(SQLModel.metadata, "intake")
