"""Small helpers for tests that run against real servers: free ports and throwaway PostgreSQL databases."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (held together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def libpq_url(url: str) -> str:
    """postgresql+psycopg://… → postgresql://… (what psycopg.connect takes)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def fresh_databases(postgres_url: str, names: list[str]) -> Iterator[list[str]]:
    """Create one database per name (made unique) on the server of `postgres_url`; yields their
    SQLAlchemy URLs and drops them afterwards."""
    import psycopg
    from psycopg import sql

    unique = [f"{name}_{uuid.uuid4().hex[:10]}" for name in names]
    admin = libpq_url(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in unique:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        yield [with_database(postgres_url, db) for db in unique]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in unique:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
