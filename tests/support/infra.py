"""Small helpers for tests that run against real servers: free ports, throwaway PostgreSQL databases,
topics, a service's environment, a Kafka broker of a test's own."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """CI sets CI (to anything but empty, 0, false or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> NoReturn:
    """A real part a test needs is missing (a server, a binary): skip on a developer's machine, fail in CI,
    where `make test` installs everything and a missing part is a broken build, not a reason to skip."""
    import pytest

    if in_ci():
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


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


async def create_topics(bootstrap: str, topics: Iterable[str], partitions: int = 4) -> None:
    """Create `topics` as a deployment would have them: `partitions` each (keys spread), one replica."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    finally:
        await admin.close()


async def read_until_quiet(bootstrap: str, topic: str, settle_s: float = 2.0) -> list[Any]:
    """Every record on `topic` from its beginning, read until nothing more has come for `settle_s`
    (outside any consumer group, so no test's reading moves a service's offsets)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < settle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
            if batch:
                idle_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


def service_env(service: str, settings: dict[str, str], **shared: str) -> dict[str, str]:
    """The environment of one service started as a process: this process's, without any setting of that
    service or shared by all of them (which a developer's shell or CI may hold), then `settings` under the
    service's prefix (`{"http_port": "8002"}` → `DEADLINE_HTTP_PORT`) and the `shared` ones as named
    (`KAFKA_BOOTSTRAP_SERVERS=…`)."""
    prefix = f"{service.upper()}_"
    return {**{k: v for k, v in os.environ.items() if not k.startswith((prefix, "TTHC_", "KAFKA_"))},
            **shared, **{prefix + k.upper(): v for k, v in settings.items()}}


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
