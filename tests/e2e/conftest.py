"""Fixtures of the end-to-end tests: one fresh PostgreSQL database per service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.stack import SERVICES, libpq_url, with_database


@pytest.fixture
def service_databases(postgres_url: str) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for each service (each has its own tables and migration history)."""
    import psycopg
    from psycopg import sql

    names = {s: f"e2e_{uuid.uuid4().hex[:10]}_{s}" for s in SERVICES}
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        for db in names.values():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        yield {s: with_database(postgres_url, db) for s, db in names.items()}
    finally:
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
            for db in names.values():
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
