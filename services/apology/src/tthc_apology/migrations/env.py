from sqlmodel import SQLModel

import tthc_apology.models  # noqa: F401  (registers the apology service's tables in SQLModel.metadata)
from tthc_common.migrations import run_alembic_env

run_alembic_env(SQLModel.metadata, "apology")
