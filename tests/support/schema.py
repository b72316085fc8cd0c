"""Do a service's Alembic migrations create exactly the tables its models describe?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa


def migration_differences(tmp_path: Path, migrations_dir: Path, tables: set[str]) -> list[Any]:
    """Alembic's autogenerate differences between a SQLite database migrated from scratch with
    `migrations_dir` and the SQLModel tables `tables` (tables of other services, which share the process's
    metadata, are not ours: their absence is no difference). Empty when they agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel
    from tthc_common.db import make_engine, run_migrations

    url = f"sqlite:///{tmp_path}/schema.db"
    run_migrations(url, migrations_dir)
    metadata = sa.MetaData()
    for name in tables:
        SQLModel.metadata.tables[name].to_metadata(metadata)
    with make_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table")]
