"""Small helpers for tests that run against real servers: free ports, throwaway PostgreSQL databases, a
Kafka broker of a test's own."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (deploy/local/stack.py's, which the stack uses)."""
    from tests.support.stack import stack_module

    return stack_module.free_ports(n)


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


class KeptBroker:
    """A Kafka broker of a test's own (deploy/local/kafka.sh) whose topics survive a crash and a restart:
    `start()`, `kill()` (SIGKILL, as a crash), `stop()` (and its data removed by `remove()`)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_ports(1)[0]
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data_dir),
               "KAFKA_KEEP_DATA": "1"}
        done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), command], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed:\n{done.stderr[-4000:]}")

    def start(self) -> None:
        try:
            self._run("start")
        except RuntimeError:
            # Right after a crash its listening ports may not be free yet (seen once in many runs): once more.
            time.sleep(3)
            self._run("start")

    def kill(self) -> None:
        pid = int((self.data_dir / "kafka.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        self._run("stop")

    def __enter__(self) -> KeptBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
