"""`create_app(settings)`: the apology service's FastAPI app.

Consumes dossier events (receipts, extensions) and deadline events, keeps one draft per
(dossier, kind, due_at), publishes apology events through the outbox, and serves the officers' API
and inbox. Refuses to start on an unreadable calendar file, malformed officer keys or a letter template
with unknown or missing placeholders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine
from tthc_common.outbox import OutboxRelay
from tthc_common.service import build_service_app
from tthc_core.calendar import CalendarBook
from tthc_adapters.calendar_file import load_calendar

from .access_log import redact_keys_in_access_log
from .api import router as api_router
from .config import ApologySettings
from .consumers import register_consumers
from .documents import Letters, check_templates
from .inbox import inbox_router
from .metrics import ApologyMetrics
from .runtime import ApologyRuntime

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

logger = logging.getLogger("tthc.apology")


def create_app(settings: ApologySettings | None = None) -> FastAPI:
    settings = settings or ApologySettings()
    # Start-up checks first: each raises with the file/entry and the reason (see __main__).
    book = CalendarBook(load_calendar(settings.calendar_file))
    templates = check_templates(settings.templates_dir)
    keys = settings.keys

    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    router = make_kafka_router(settings, registry=registry)
    relay = OutboxRelay(engine, router.broker, name=settings.service_name,
                        poll_interval_s=settings.outbox_poll_interval_s,
                        publish_timeout_s=settings.kafka_publish_timeout_s,
                        retry_delay_s=settings.retry_delay_s)
    rt = ApologyRuntime(settings=settings, engine=engine, topics=settings.topics, book=book, keys=keys,
                        letters=Letters(settings, book, templates), metrics=ApologyMetrics(registry),
                        relay=relay)
    register_consumers(router, rt)
    app = build_service_app(settings, title="TTHC apology", router=router, engine=engine, registry=registry,
                            migrations_dir=MIGRATIONS_DIR, relay=relay)
    app.state.apology = rt
    redact_keys_in_access_log()
    app.include_router(api_router)
    app.include_router(inbox_router())
    if not keys:
        logger.warning("APOLOGY_OFFICER_KEYS is empty: every API and inbox request will be refused (401)")
    return app
