"""Fixtures shared by every test layer: real Kafka and PostgreSQL, and per-test isolation on them.

Where the services come from, in this order:

1. The environment: ``KAFKA_BOOTSTRAP_SERVERS`` and ``TTHC_TEST_DATABASE_URL`` (or ``DATABASE_URL``), a
   SQLAlchemy URL such as ``postgresql+psycopg://postgres@127.0.0.1:55432/postgres``.
   ``make test`` sets them through ``deploy/local/with-infra.sh``, which starts a throwaway broker and
   server without Docker; ``deploy/local/with-infra.sh .venv/bin/pytest tests/integration`` does the same.
2. testcontainers, when a Docker engine answers (one container per session).
3. Otherwise the test fails when ``CI`` is set (a green CI run must never hide skipped integration tests)
   and is skipped on a developer's machine.

Tests sharing one broker or server stay apart with ``topic_prefix`` (unique topic names and group ids)
and ``pg_database_url`` (a fresh database per test). Tests using these fixtures get the ``kafka`` or
``postgres`` marker automatically, so ``pytest -m "not kafka and not postgres"`` runs without services.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.support.infra import free_ports, fresh_databases, unavailable

KAFKA_IMAGE = os.environ.get("TTHC_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
POSTGRES_IMAGE = os.environ.get("TTHC_TEST_POSTGRES_IMAGE", "postgres:15-alpine")


@functools.cache
def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _unavailable(service: str, variable: str) -> NoReturn:
    unavailable(f"no {service}: set {variable}, run under deploy/local/with-infra.sh (make test), "
                "or start a Docker engine for testcontainers")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kafka_bootstrap" in names:
            item.add_marker(pytest.mark.kafka)
        if "postgres_url" in names or "pg_database_url" in names:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker (``host:port``), auto topic creation on."""
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    if _docker_available():
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(KAFKA_IMAGE).with_kraft().with_env("KAFKA_NUM_PARTITIONS", "4")
        with container as kafka:
            yield kafka.get_bootstrap_server()
        return
    _unavailable("Kafka broker", "KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of a real PostgreSQL server's admin database."""
    if url := os.environ.get("TTHC_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL"):
        yield url
        return
    if _docker_available():
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer(
            POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres", driver="psycopg"
        )
        with container as pg:
            yield pg.get_connection_url()
        return
    _unavailable("PostgreSQL server", "TTHC_TEST_DATABASE_URL")


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, uniquely named database on the server, dropped after the test."""
    with fresh_databases(postgres_url, ["test"]) as (url,):
        yield url


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix such as ``t-1a2b3c4d.`` for the topic names and group ids of one test."""
    return f"t-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts itself)."""
    return free_ports(1)[0]
