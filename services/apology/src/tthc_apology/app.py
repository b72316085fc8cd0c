"""`create_app(settings)`: the apology service's one composition root.

Consumes dossier events (receipts, extensions) and deadline events in batches, keeps one draft per
(dossier, kind, due_at), publishes apology events through the outbox, and serves the officers' API and
inbox. Refuses to start on malformed officer keys, an unreadable calendar file or a letter template with
unknown or missing placeholders (one line each, through `service_main`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
from tthc_common.keys import Keys
from tthc_common.outbox import OutboxRelay
from tthc_common.service import build_service_app
from tthc_contracts.topics import Topics
from tthc_core.calendar import CalendarBook

from . import http, inbox, units
from .access_log import redact_keys_in_access_log
from .config import OFFICER_KEYS_SETTING, ApologySettings
from .consumers import declare_publications, parse_deadline_record, parse_dossier_record, register_consumers
from .documents import Letters, check_templates
from .metrics import ApologyMetrics

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

logger = logging.getLogger("tthc.apology")


@dataclass(frozen=True)
class Deps:
    """Everything the consumers and the HTTP routes share, built once per app."""

    settings: ApologySettings
    engine: Engine
    topics: Topics
    book: CalendarBook
    keys: Keys
    letters: Letters
    metrics: ApologyMetrics
    relay: OutboxRelay
    dossier_events: BatchRunner[Any, units.Applied]
    deadline_events: BatchRunner[Any, units.Applied]

    def after(self, outcomes: Iterable[units.Applied]) -> None:
        """After a transaction that queued apology events: count them and let the relay send them now."""
        published = [p for outcome in outcomes for p in outcome.published]
        if published:
            self.metrics.count(published)
            self.relay.wake()


def create_app(settings: ApologySettings | None = None) -> FastAPI:
    settings = settings or ApologySettings()
    # Start-up checks first: each raises with the entry or the file and the reason (see __main__).
    keys = Keys.parse(settings.officer_keys, setting=OFFICER_KEYS_SETTING, prog="tthc_apology")
    book = CalendarBook(load_calendar(settings.calendar_file))
    templates = check_templates(settings.templates_dir)

    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    router = make_kafka_router(settings, registry=registry)
    relay = OutboxRelay(engine, router.broker, name=settings.service_name,
                        poll_interval_s=settings.outbox_poll_interval_s,
                        publish_timeout_s=settings.kafka_publish_timeout_s,
                        retry_delay_s=settings.retry_delay_s)
    topics = settings.topics
    runners = make_runners(settings, engine=engine, broker=router.broker, registry=registry)
    deps = Deps(
        settings=settings, engine=engine, topics=topics, book=book, keys=keys,
        letters=Letters(settings, book, templates), metrics=ApologyMetrics(registry), relay=relay,
        dossier_events=runners(units.DOSSIER_CONSUMER, parse=parse_dossier_record,
                               unit=partial(units.apply_dossier_events, apology_topic=topics.apology_events)),
        deadline_events=runners(units.DEADLINE_CONSUMER, parse=parse_deadline_record,
                                unit=partial(units.apply_deadline_events, book=book,
                                             apology_topic=topics.apology_events)),
    )
    register_consumers(router, deps)
    declare_publications(router, topics)
    app = build_service_app(
        settings, title="TTHC apology", router=router, engine=engine, registry=registry,
        migrations_dir=MIGRATIONS_DIR, relay=relay, version="1", max_body_bytes=http.MAX_BODY_BYTES,
        description="Apology letters (Mẫu 04) owed when a dossier is at risk, overdue or closed late: the "
                    "agency's officers list them, download them (DOCX, PDF) and issue them with a number. "
                    "Every request carries an officer key (`Authorization: Bearer <key>`), bound to one agency; "
                    "the officers' page is `/inbox`. Errors: `{\"errors\": [{\"field\"?, \"reason\"}]}`.")
    app.include_router(http.router(deps))
    app.include_router(inbox.router(deps))
    app.state.deps = deps
    redact_keys_in_access_log()
    if not keys:
        logger.warning(f"{OFFICER_KEYS_SETTING} is empty: every API and inbox request will be refused (401)")
    return app
