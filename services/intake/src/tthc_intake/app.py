"""`create_app(settings)`: intake's FastAPI app (HTTP in, Kafka out; intake consumes nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.health import kafka_ready
from tthc_common.keys import Keys
from tthc_common.service import StartupRefused, build_service_app
from tthc_contracts.events import DossierEvent

from . import http
from .config import PRODUCER_MAX_REQUEST_BYTES, IntakeSettings
from .metrics import IntakeMetrics
from .publisher import EventPublisher, TransactionalPublisher

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

DESCRIPTION = """One-stop software posts dossier events here (the v1 contract, `GET /v1/schemas`); intake validates
them and publishes them to Kafka, keyed by `dossier_id`. Authenticate with `Authorization: Bearer <source key>`.
The events intake publishes are described by its AsyncAPI document at `/asyncapi`."""


@dataclass(frozen=True)
class Deps:
    settings: IntakeSettings
    engine: Engine
    keys: Keys
    metrics: IntakeMetrics
    publisher: EventPublisher


def create_app(settings: IntakeSettings | None = None, *, publisher: EventPublisher | None = None) -> FastAPI:
    """`publisher`: where events go (default: Kafka, one transaction per request; tests give their own)."""
    settings = settings or IntakeSettings()
    keys = Keys.parse(settings.source_keys, setting="INTAKE_SOURCE_KEYS", prog="tthc_intake")
    if not keys:
        raise StartupRefused("no source keys: set INTAKE_SOURCE_KEYS=<source>=sha256:<64 hex>,... "
                             "(`python -m tthc_intake hash-key KEY` prints a key's digest)")
    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    kafka = make_kafka_router(settings, registry=registry)
    # Declared for the AsyncAPI document only: the events are published by `publisher`, in transactions.
    kafka.publisher(settings.topics.dossier_events, title="dossier events",
                    description="Every accepted v1 dossier event, keyed by dossier_id (events.md); one request's "
                                "events are committed in one Kafka transaction: read them with "
                                "isolation_level=read_committed.",
                    schema=DossierEvent)
    if publisher is None:
        publisher = TransactionalPublisher(
            bootstrap_servers=settings.kafka_bootstrap_servers, transactional_id=settings.transactional_id,
            client_id=f"tthc-{settings.service_name}-events", publish_timeout_s=settings.kafka_publish_timeout_s,
            down_timeout_s=settings.kafka_down_publish_timeout_s,
            transaction_timeout_s=settings.kafka_transaction_timeout_s,
            max_request_bytes=PRODUCER_MAX_REQUEST_BYTES,
            watch_interval_s=settings.broker_watch_interval_s, probe=partial(kafka_ready, kafka.broker))
    deps = Deps(settings=settings, engine=engine, keys=keys,
                metrics=IntakeMetrics(registry, kafka_reachable=lambda: publisher.reachable), publisher=publisher)
    app = build_service_app(settings, title="TTHC intake", description=DESCRIPTION, router=kafka, engine=engine,
                            registry=registry, migrations_dir=MIGRATIONS_DIR, after_broker_start=(publisher.start,),
                            before_broker_stop=(publisher.stop,),
                            # served by http.router, with the event union that FastAPI does not know of
                            openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(http.router(deps))
    app.state.deps = deps
    return app
