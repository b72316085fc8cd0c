"""The metrics service: `create_app(settings)`.

Consumes dossier, apology and deadline events in batches into its own database (units.py), serves
`GET /v1/indices` (http.py) and exposes the index figures of the current month, quarter and year as
Prometheus gauges (gauges.py) next to `/healthz`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tthc_adapters.calendar_file import load_calendar
from tthc_common.batches import BatchRunner, make_runners
from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.service import build_service_app
from tthc_core.calendar import CalendarBook
from tthc_core.indices import facts_basis

from . import http, units
from .config import MetricsSettings
from .consumers import (
    APOLOGY_GROUP,
    DEADLINE_GROUP,
    parse_apology_record,
    parse_deadline_record,
    parse_dossier_record,
    register_consumers,
)
from .counting import StartupCounting
from .gauges import GaugeRefresher, IndexGauges
from .metrics import MetricsServiceMetrics

MIGRATIONS_DIR = Path(__file__).parent / "migrations"  # Alembic, this service's own history

logger = logging.getLogger("tthc.metrics")


@dataclass(frozen=True)
class Deps:
    settings: MetricsSettings
    engine: Engine
    book: CalendarBook
    basis: str  # facts_basis(book): what the kept counts must agree with
    metrics: MetricsServiceMetrics
    gauges: IndexGauges
    refresher: GaugeRefresher
    counting: StartupCounting
    dossier_events: BatchRunner[Any, units.Stored]
    apology_events: BatchRunner[Any, units.Stored]
    deadline_events: BatchRunner[Any, units.Stored]


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    # A calendar file that does not parse stops the start (CalendarFileError names the line).
    book = CalendarBook(load_calendar(settings.calendar_file))
    basis = facts_basis(book)
    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    router = make_kafka_router(settings, registry=registry)
    runners = make_runners(settings, engine=engine, broker=router.broker, registry=registry)
    gauges = IndexGauges()
    registry.register(gauges)
    deps = Deps(
        settings=settings,
        engine=engine,
        book=book,
        basis=basis,
        metrics=MetricsServiceMetrics(registry),
        gauges=gauges,
        refresher=GaugeRefresher(engine, book, basis, gauges, settings.gauge_refresh_interval_s, registry),
        counting=StartupCounting(engine, book, basis),
        # Named by consumer group: the name a dead letter carries (`tthc-dead-letter-consumer`).
        dossier_events=runners(settings.consumer_group, parse=parse_dossier_record,
                               unit=partial(units.apply_dossier_events, book=book, basis=basis)),
        apology_events=runners(settings.consumer_group + APOLOGY_GROUP, parse=parse_apology_record,
                               unit=partial(units.apply_apology_events, book=book, basis=basis)),
        deadline_events=runners(settings.consumer_group + DEADLINE_GROUP, parse=parse_deadline_record,
                                unit=units.apply_deadline_events),
    )
    register_consumers(router, deps)
    app = build_service_app(
        settings,
        title="TTHC metrics",
        description="Index figures of spec/indices.md from the dossier, apology and deadline events.",
        router=router,
        engine=engine,
        registry=registry,
        migrations_dir=MIGRATIONS_DIR,
        after_broker_start=[deps.counting.start, deps.refresher.start],
        before_broker_stop=[deps.refresher.stop, deps.counting.stop],
    )
    app.include_router(http.router(deps))
    app.state.deps = deps
    return app
