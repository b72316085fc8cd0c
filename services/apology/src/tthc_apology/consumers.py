"""The Kafka subscribers: thin. Decode, run one unit of work (event_processing), then count and wake
the outbox relay. Errors are sorted by the dead-letter middleware (tthc_common.dead_letter):
permanent ones go to the dead-letter topic with the reason, passing ones are read again."""

from __future__ import annotations

import logging
from functools import partial

from tthc_common.broker import KafkaMessage, KafkaRouter, consumer_options
from tthc_common.db import run_in_transaction
from tthc_common.logging import event_log_fields

from .event_processing import (
    apply_deadline_event,
    apply_dossier_event,
    parse_deadline_message,
    parse_dossier_message,
)
from .runtime import ApologyRuntime

logger = logging.getLogger("tthc.apology.consumers")

# The dossier-events group is the service's own (`tthc-apology` by default); the deadline-events
# subscriber gets a group of its own so the two topics never wait on each other's rebalances.
DEADLINE_GROUP_SUFFIX = ".deadline-events"


def register_consumers(router: KafkaRouter, rt: ApologyRuntime) -> None:
    settings = rt.settings
    apology_topic = rt.topics.apology_events

    @router.subscriber(rt.topics.dossier_events, **consumer_options(settings))
    async def on_dossier_event(msg: KafkaMessage) -> None:
        event = parse_dossier_message(msg.body)
        if event is None:
            return  # a dossier event the apology rules do not use
        published = await run_in_transaction(
            rt.engine, partial(apply_dossier_event, event=event, apology_topic=apology_topic))
        logger.debug("dossier event applied", extra={**event_log_fields(event), "count": len(published)})
        rt.committed(published)

    @router.subscriber(rt.topics.deadline_events,
                       **consumer_options(settings, group_suffix=DEADLINE_GROUP_SUFFIX))
    async def on_deadline_event(msg: KafkaMessage) -> None:
        event = parse_deadline_message(msg.body)
        if event is None:
            logger.info("deadline event of an unknown type ignored", extra={"topic": rt.topics.deadline_events})
            return
        published = await run_in_transaction(
            rt.engine, partial(apply_deadline_event, event=event, book=rt.book, apology_topic=apology_topic))
        logger.debug("deadline event applied", extra={**event_log_fields(event), "count": len(published)})
        rt.committed(published)
