"""The metrics service: `create_app(settings)`.

Consumes dossier, apology and deadline events into its own database, serves `GET /v1/indices`
(report.py) and exposes the index figures of the current month, quarter and year as Prometheus
gauges (gauges.py) next to `/healthz`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.service import build_service_app
from tthc_core.calendar import CalendarBook
from tthc_adapters.calendar_file import load_calendar

from .config import MetricsSettings
from .consumers import register_consumers
from .gauges import EventCounters, GaugeRefresher, IndexGauges
from .report import indices_router

MIGRATIONS_DIR = Path(__file__).parent / "migrations"  # Alembic, this service's own history


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    # A calendar file that does not parse stops the start (CalendarFileError names the line).
    book = CalendarBook(load_calendar(settings.calendar_file))
    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    router = make_kafka_router(settings, registry=registry)
    counters = EventCounters(registry)
    gauges = IndexGauges()
    registry.register(gauges)
    refresher = GaugeRefresher(engine, book, gauges, settings.gauge_refresh_interval_s, registry)
    register_consumers(router, settings, engine, book, counters)

    app = build_service_app(
        settings,
        title="TTHC metrics",
        router=router,
        engine=engine,
        registry=registry,
        migrations_dir=MIGRATIONS_DIR,
        after_broker_start=[refresher.start],
        before_broker_stop=[refresher.stop],
    )
    app.include_router(indices_router(engine, book))
    app.state.book = book
    app.state.gauges = gauges
    app.state.refresher = refresher
    return app
