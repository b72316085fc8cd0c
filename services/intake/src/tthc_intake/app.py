"""`create_app(settings)`: intake's FastAPI app (HTTP in, Kafka out; intake consumes nothing).

Start-up: the DVCQG catalogue (`INTAKE_DVCQG_CATALOGUE`, optional) is read first; one that does not load
refuses the start with its line and reason."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from tthc_adapters.catalogue_file import CatalogueError, load_catalogue
from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.health import kafka_ready
from tthc_common.keys import Keys
from tthc_common.service import StartupRefused, build_service_app
from tthc_contracts.dvcqg import Catalogue
from tthc_contracts.events import DossierEvent

from . import http
from .config import PRODUCER_MAX_REQUEST_BYTES, IntakeSettings
from .metrics import IntakeMetrics
from .publisher import EventPublisher, TransactionalPublisher

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

DESCRIPTION = """One-stop software posts dossier events here (the v1 contract, `GET /v1/schemas`); intake validates
them and publishes them to Kafka, keyed by `dossier_id`. Authenticate with `Authorization: Bearer <source key>`.
A one-stop system that already synchronises with the national portal posts the portal's own bodies
(`DongBoHoSoMC`, `CapNhatTienDoHoSoMC`) to `POST /v1/dvcqg` instead: intake translates them into v1 events.
The events intake publishes are described by its AsyncAPI document at `/asyncapi`."""


@dataclass(frozen=True)
class Deps:
    settings: IntakeSettings
    engine: Engine
    keys: Keys
    metrics: IntakeMetrics
    publisher: EventPublisher
    # `POST /v1/dvcqg`: MaTTHC -> statutory duration, agency names (None: the endpoint answers 501).
    catalogue: Catalogue | None
    # Held from reading a progress body's kept steps to keeping its new ones, so that two requests of this
    # instance never pair steps of one dossier without each other.
    progress_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def create_app(settings: IntakeSettings | None = None, *, publisher: EventPublisher | None = None) -> FastAPI:
    """`publisher`: where events go (default: Kafka, one transaction per request; tests give their own)."""
    settings = settings or IntakeSettings()
    catalogue = _catalogue(settings)
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
                metrics=IntakeMetrics(registry, kafka_reachable=lambda: publisher.reachable), publisher=publisher,
                catalogue=catalogue)
    app = build_service_app(settings, title="TTHC intake", description=DESCRIPTION, router=kafka, engine=engine,
                            registry=registry, migrations_dir=MIGRATIONS_DIR, after_broker_start=(publisher.start,),
                            before_broker_stop=(publisher.stop,),
                            # served by http.router, with the event union that FastAPI does not know of
                            openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(http.router(deps))
    app.state.deps = deps
    return app


def _catalogue(settings: IntakeSettings) -> Catalogue | None:
    if settings.dvcqg_catalogue is None:
        return None
    try:
        return load_catalogue(settings.dvcqg_catalogue)
    except CatalogueError as exc:
        raise StartupRefused(f"INTAKE_DVCQG_CATALOGUE: {exc}") from None
