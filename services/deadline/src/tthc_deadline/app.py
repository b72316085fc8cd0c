"""`create_app(settings)`: the deadline service as a FastAPI app with its Kafka consumers.

Start-up: the calendar file is read first (an invalid one raises `CalendarFileError` with its line and
reason, and nothing starts), then migrations, the broker and its consumers, the outbox relay, and
finally the sweeper (whose first run re-folds the open dossiers if the calendar changed) and the
wall-clock ticker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from tthc_adapters.calendar_file import load_calendar
from tthc_common.batches import BatchRunner, make_runners
from tthc_common.broker import make_kafka_router
from tthc_common.db import make_engine, run_in_transaction
from tthc_common.outbox import OutboxRelay
from tthc_common.service import build_service_app
from tthc_core.calendar_config import CalendarConfig

from . import http
from .active_calendar import ActiveCalendar
from .config import DeadlineSettings
from .consumers import parse_dossier_record, parse_tick, register_consumers
from .metrics import DeadlineMetrics, StateGauges
from .queries import read_watermark
from .sweeper import DueSweeper
from .ticker import Ticker
from .units import apply_dossier_events, apply_ticks, queue_unpublished_conflicts

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Deps:
    """Everything the consumers, the HTTP routes and the background loops share, built once."""

    settings: DeadlineSettings
    engine: Engine
    calendar: ActiveCalendar
    metrics: DeadlineMetrics
    relay: OutboxRelay
    sweeper: DueSweeper
    ticker: Ticker
    state_gauges: StateGauges
    dossier_events: BatchRunner[Any, Any]
    ticks: BatchRunner[Any, Any]


def warm_up(app: FastAPI) -> None:
    """Load the holidays tables now (about 2 s), not while the first dossier event waits."""
    app.state.deps.calendar.book.for_agency("").is_working_day(date(2026, 1, 1))


def create_app(settings: DeadlineSettings | None = None, *, calendar: CalendarConfig | None = None) -> FastAPI:
    settings = settings or DeadlineSettings()
    active = ActiveCalendar.of(calendar if calendar is not None else load_calendar(settings.calendar_file))
    topics = settings.topics
    registry = CollectorRegistry()
    metrics = DeadlineMetrics(registry)
    router = make_kafka_router(settings, registry=registry)
    broker = router.broker
    engine = make_engine(settings.database_url)
    relay = OutboxRelay(engine, broker, name="deadline", poll_interval_s=settings.outbox_poll_interval_s,
                        publish_timeout_s=settings.kafka_publish_timeout_s, retry_delay_s=settings.retry_delay_s)
    state_gauges = StateGauges(engine, metrics, settings.state_gauges_min_interval_s)
    runners = make_runners(settings, engine=engine, broker=broker, registry=registry)
    max_lead = None if settings.max_event_lead_s is None else timedelta(seconds=settings.max_event_lead_s)
    deps = Deps(
        settings=settings,
        engine=engine,
        calendar=active,
        metrics=metrics,
        relay=relay,
        sweeper=DueSweeper(engine, active, deadline_topic=topics.deadline_events, batch_size=settings.due_batch_size,
                           metrics=metrics, relay=relay, retry_delay_s=settings.retry_delay_s,
                           on_advanced=state_gauges.wake),
        ticker=Ticker(broker, topic=topics.deadline_ticks, interval_s=settings.tick_interval_s,
                      instance=settings.instance_name, metrics=metrics,
                      publish_timeout_s=settings.kafka_publish_timeout_s),
        state_gauges=state_gauges,
        dossier_events=runners("deadline.dossier-events", parse=parse_dossier_record, unit=partial(
            apply_dossier_events, calendar=active, deadline_topic=topics.deadline_events,
            dead_letter_topic=topics.dead_letter, consumer=settings.consumer_group, max_lead=max_lead)),
        ticks=runners("deadline.ticks", parse=parse_tick, unit=apply_ticks),
    )
    register_consumers(router, deps)

    async def start_background() -> None:
        await catch_up(deps)
        deps.state_gauges.start()
        deps.sweeper.start()
        if settings.publish_ticks:
            deps.ticker.start()

    async def stop_background() -> None:
        await deps.ticker.stop()
        await deps.sweeper.stop()
        await deps.state_gauges.stop()

    app = build_service_app(
        settings,
        title="TTHC deadline service",
        router=router,
        engine=engine,
        registry=registry,
        migrations_dir=MIGRATIONS_DIR,
        relay=relay,
        after_broker_start=(start_background,),
        before_broker_stop=(stop_background,),
    )
    app.include_router(http.router(deps))
    app.state.deps = deps  # for tests only
    return app


async def catch_up(deps: Deps) -> None:
    """At start-up: show the stored watermark and the state counts, and queue the dead-letter records an
    older version left unpublished. (The sweeper's first run re-folds the open dossiers if the calendar
    changed and finishes a sweep a crash cut short.)"""
    deps.metrics.set_watermark(await run_in_transaction(deps.engine, read_watermark))
    await deps.state_gauges.refresh()
    queued = await run_in_transaction(deps.engine, partial(
        queue_unpublished_conflicts, topic=deps.settings.topics.dead_letter, consumer=deps.settings.consumer_group))
    if queued:
        deps.relay.wake()
