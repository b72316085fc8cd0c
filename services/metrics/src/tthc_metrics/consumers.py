"""The metrics service's Kafka subscribers: validate, store in one transaction, count.

- dossier events (group `<consumer_group>`, i.e. `tthc-metrics`): every event is stored once in the
  per-dossier event log, with its processed-event row, in one transaction;
- apology events (group `<consumer_group>-apology`): the first `apology.issued` instant per dossier;
- deadline events (group `<consumer_group>-deadline`): live counters only (and the watermark).

A message that can never be processed (not JSON, not a valid event) raises a validation error: the
dead-letter middleware (tthc_common.dead_letter) sets it aside with the reason and the offset is
committed. Anything else (database down) propagates: the message is read again.
"""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy.engine import Engine

from tthc_common.broker import KafkaMessage, KafkaRouter, consumer_options
from tthc_common.db import run_in_transaction
from tthc_contracts import apology_event_adapter, deadline_event_adapter
from tthc_contracts.events import parse_dossier_event_json
from tthc_core.calendar import CalendarBook

from . import store
from .config import MetricsSettings
from .gauges import EventCounters

logger = logging.getLogger("tthc.metrics.consumers")

UNKNOWN_AGENCY = "unknown"


def register_consumers(router: KafkaRouter, settings: MetricsSettings, engine: Engine, book: CalendarBook,
                       counters: EventCounters) -> None:
    topics = settings.topics

    @router.subscriber(topics.dossier_events, **consumer_options(settings))
    async def on_dossier_event(msg: KafkaMessage) -> None:
        event = parse_dossier_event_json(msg.body)
        new = await run_in_transaction(engine, partial(store.record_dossier_event, event=event, book=book))
        counters.event(store.STREAM_DOSSIER, event.type, new)

    @router.subscriber(topics.apology_events, **consumer_options(settings, group_suffix="-apology"))
    async def on_apology_event(msg: KafkaMessage) -> None:
        event = apology_event_adapter.validate_json(msg.body)
        new = await run_in_transaction(engine, partial(store.record_apology_event, event=event))
        counters.event(store.STREAM_APOLOGY, event.type, new)

    @router.subscriber(topics.deadline_events, **consumer_options(settings, group_suffix="-deadline"))
    async def on_deadline_event(msg: KafkaMessage) -> None:
        event = deadline_event_adapter.validate_json(msg.body)
        recorded = await run_in_transaction(engine, partial(store.record_deadline_event, event=event))
        counters.event(store.STREAM_DEADLINE, event.type, recorded.new)
        if recorded.first_close:
            agency = event.data.handling_agency.code if event.data.handling_agency else UNKNOWN_AGENCY
            counters.closed_dossier(agency, event.data.outcome)
