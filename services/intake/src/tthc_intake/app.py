"""`create_app(settings)`: intake's FastAPI app (HTTP in, Kafka out; intake consumes nothing)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.service import build_service_app

from .config import IntakeSettings
from .handlers import events_router
from .metrics import IntakeMetrics

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    router = make_kafka_router(settings, registry=registry)
    app = build_service_app(settings, title="TTHC intake", router=router, engine=engine,
                            registry=registry, migrations_dir=MIGRATIONS_DIR)
    app.include_router(events_router(settings=settings, engine=engine, broker=router.broker,
                                     metrics=IntakeMetrics(registry)))
    return app
