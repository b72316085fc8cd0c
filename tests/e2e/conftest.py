"""Fixtures of the end-to-end tests: one fresh PostgreSQL database per service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infra import fresh_databases
from tests.support.stack import SERVICES


@pytest.fixture
def service_databases(postgres_url: str) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for each service (each has its own tables and migration history)."""
    with fresh_databases(postgres_url, [f"e2e_{s}" for s in SERVICES]) as urls:
        yield dict(zip(SERVICES, urls))
