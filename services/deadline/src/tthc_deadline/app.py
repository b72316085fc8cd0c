"""`create_app(settings)`: the deadline service as a FastAPI app with its Kafka consumers.

Start-up: the calendar file is read first (an invalid one raises `CalendarFileError` with its line and
reason, and nothing starts), then migrations, the broker and its consumers, the outbox relay, and
finally the sweeper (whose first run re-folds the open dossiers if the calendar changed) and the
wall-clock ticker.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from tthc_common.broker import KafkaMessage, consumer_options, make_kafka_router
from tthc_common.db import make_engine
from tthc_common.outbox import OutboxRelay
from tthc_common.service import build_service_app
from tthc_core.calendar import CalendarBook
from tthc_adapters.calendar_file import load_calendar
from tthc_core.calendar_config import CalendarConfig

from .calendar_version import calendar_version
from .config import DeadlineSettings
from .consumers import DeadlineConsumers, kafka_position
from .metrics import DeadlineMetrics
from .routes import dossier_routes
from .store import ActiveCalendar
from .sweeper import DueSweeper
from .ticker import Ticker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TICKS_GROUP_SUFFIX = "-ticks"


def warm_up(app: FastAPI) -> None:
    """Load the holidays tables now (about 2 s), not while the first dossier event waits."""
    book = app.state.calendar.book
    book.for_agency("").is_working_day(date(2026, 1, 1))


def create_app(settings: DeadlineSettings | None = None, *, calendar: CalendarConfig | None = None) -> FastAPI:
    settings = settings or DeadlineSettings()
    config = calendar if calendar is not None else load_calendar(settings.calendar_file)
    active = ActiveCalendar(CalendarBook(config), calendar_version(config))
    topics = settings.topics
    registry = CollectorRegistry()
    metrics = DeadlineMetrics(registry)
    router = make_kafka_router(settings, registry=registry)
    broker = router.broker
    engine = make_engine(settings.database_url)
    relay = OutboxRelay(engine, broker, name="deadline", poll_interval_s=settings.outbox_poll_interval_s,
                        publish_timeout_s=settings.kafka_publish_timeout_s, retry_delay_s=settings.retry_delay_s)
    sweeper = DueSweeper(engine, active, deadline_topic=topics.deadline_events, batch_size=settings.due_batch_size,
                         metrics=metrics, relay=relay, retry_delay_s=settings.retry_delay_s)
    consumers = DeadlineConsumers(engine, active, deadline_topic=topics.deadline_events, metrics=metrics,
                                  relay=relay, sweeper=sweeper, dead_letter_topic=topics.dead_letter,
                                  consumer=settings.consumer_group,
                                  max_event_lead=None if settings.max_event_lead_s is None
                                  else timedelta(seconds=settings.max_event_lead_s))
    # State counts change when events are applied (consumers) and when time passes (sweeper).
    sweeper.on_advanced = consumers.state_gauges.wake
    ticker = Ticker(broker, topic=topics.deadline_ticks, interval_s=settings.tick_interval_s,
                    instance=settings.instance_name, metrics=metrics,
                    publish_timeout_s=settings.kafka_publish_timeout_s)

    @router.subscriber(topics.dossier_events, **consumer_options(settings))
    async def on_dossier_event(msg: KafkaMessage) -> None:
        await consumers.on_dossier_event(msg.body, kafka_position(msg))

    @router.subscriber(topics.deadline_ticks, **consumer_options(settings, group_suffix=TICKS_GROUP_SUFFIX))
    async def on_tick(msg: KafkaMessage) -> None:
        await consumers.on_tick(msg.body)

    async def start_background() -> None:
        await consumers.catch_up()
        consumers.state_gauges.start()
        sweeper.start()
        if settings.publish_ticks:
            ticker.start()

    async def stop_background() -> None:
        await ticker.stop()
        await sweeper.stop()
        await consumers.state_gauges.stop()

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
    app.include_router(dossier_routes(engine, settings))
    app.state.calendar = active
    app.state.metrics = metrics
    app.state.consumers = consumers
    app.state.sweeper = sweeper
    app.state.state_gauges = consumers.state_gauges
    app.state.ticker = ticker
    return app
