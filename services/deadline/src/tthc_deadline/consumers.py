"""The deadline service's two inputs, consumed in batches: dossier events and its own wall-clock ticks.

Each subscriber hands its batch to a `BatchRunner` (tthc_common.batches: a record that does not parse is
set aside on the dead-letter topic with its reason; the rest is one unit of work of `units`), then acts on
what the committed batch did: counts, logs, wakes the outbox relay, the sweeper and the state gauges.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tthc_common.batches import record_json
from tthc_common.asyncapi import declare_publisher, payload_of
from tthc_common.broker import KafkaMessage, KafkaRouter, batch_options
from tthc_contracts import parse_dossier_event
from tthc_contracts.derived import DeadlineEvent, Tick
from tthc_contracts.events import DossierEvent

from .units import EventsOutcome, TicksOutcome

if TYPE_CHECKING:
    from .app import Deps

logger = logging.getLogger("tthc.deadline.consumers")

TICKS_GROUP_SUFFIX = "-ticks"


def parse_dossier_record(record: Any) -> Any:
    return parse_dossier_event(record_json(record))  # EventValidationError: set aside


def parse_tick(record: Any) -> Tick:
    return Tick.model_validate_json(record.value)


def register_consumers(router: KafkaRouter, deps: Deps) -> None:
    topics = deps.settings.topics

    @router.subscriber(topics.dossier_events, **batch_options(deps.settings), title="dossier-events",
                       description="Dossier events posted by one-stop software through intake (events.md)")
    async def on_dossier_events(payload: payload_of(DossierEvent), msg: KafkaMessage) -> None:
        after_dossier_events(deps, await deps.dossier_events.run(msg.raw_message))

    @router.subscriber(topics.deadline_ticks, **batch_options(deps.settings, group_suffix=TICKS_GROUP_SUFFIX),
                       title="deadline-ticks", description="The service's own wall-clock ticks (interfaces.md, Time)")
    async def on_ticks(payload: payload_of(Tick), msg: KafkaMessage) -> None:
        after_ticks(deps, await deps.ticks.run(msg.raw_message))
    declare_publisher(router, topics.deadline_events, DeadlineEvent, title="deadline-events",
                      description="deadline.scheduled, deadline.at_risk, deadline.overdue, deadline.closed "
                      "(events.md, derived events), keyed by dossier_id")
    declare_publisher(router, topics.deadline_ticks, Tick, title="deadline-ticks:publish",
                      description="A tick of wall time every DEADLINE_TICK_INTERVAL_S (interfaces.md, Time)")


def after_dossier_events(deps: Deps, outcomes: list[EventsOutcome]) -> None:
    metrics = deps.metrics
    for outcome in outcomes:
        for event_type, n in outcome.applied.items():
            metrics.consumed.labels(event_type).inc(n)
        metrics.duplicates.inc(outcome.duplicates)
        metrics.held.inc(outcome.held)
        metrics.refolded.inc(outcome.refolded)
        if outcome.ahead_of_ticks:
            metrics.ahead_of_ticks.inc(outcome.ahead_of_ticks)
            logger.warning("events dated past the latest tick did not move the service's time",
                           extra={"count": outcome.ahead_of_ticks})
        if outcome.conflicts:
            metrics.conflicts.inc(len(outcome.conflicts))
            for fields in outcome.conflicts:
                logger.warning("conflicting dossier.received dead-lettered", extra=fields)
        metrics.count_derived(outcome.derived)
        if outcome.conflicts or outcome.derived:
            deps.relay.wake()
        metrics.set_watermark(outcome.watermark)
        if outcome.moments_due:
            deps.sweeper.request()
    deps.state_gauges.wake()


def after_ticks(deps: Deps, outcomes: list[TicksOutcome]) -> None:
    for outcome in outcomes:
        deps.metrics.set_watermark(outcome.after)
        if outcome.moved:
            deps.sweeper.request()
    deps.state_gauges.wake()
