"""The metrics service's Kafka subscribers: batches, each one unit of work (units.py) run by a `BatchRunner`
(tthc_common.batches), then counted.

- dossier events (group `<consumer_group>`, i.e. `tthc-metrics`): stored once (redacted) and folded into
  their dossiers' states;
- apology events (group `<consumer_group>-apology`): the first `apology.issued` instant per dossier;
- deadline events (group `<consumer_group>-deadline`): live counters only (and the watermark).

A record that does not parse as its topic's event is set aside on the dead-letter topic with the reason
(`parse_*` below); the rest of its batch is processed.

The handlers' first parameter only documents the payload in the AsyncAPI document (`/asyncapi`):
`tthc_common.asyncapi.payload_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tthc_common.asyncapi import payload_of
from tthc_common.broker import KafkaMessage, KafkaRouter, batch_options
from tthc_contracts import apology_event_adapter, deadline_event_adapter
from tthc_contracts.derived import ApologyEvent, DeadlineEvent
from tthc_contracts.events import DossierEvent, parse_dossier_event_json

if TYPE_CHECKING:
    from .app import Deps

# group id suffixes: each topic is read by a group of its own, so none waits on another's rebalances
APOLOGY_GROUP = "-apology"
DEADLINE_GROUP = "-deadline"


def _value(record: Any) -> bytes:
    if record.value is None:
        raise ValueError("the record has no value")
    return bytes(record.value)


def parse_dossier_record(record: Any) -> Any:
    return parse_dossier_event_json(_value(record))


def parse_apology_record(record: Any) -> Any:
    return apology_event_adapter.validate_json(_value(record))


def parse_deadline_record(record: Any) -> Any:
    return deadline_event_adapter.validate_json(_value(record))


DossierEventPayload = payload_of(DossierEvent, "DossierEvent")
ApologyEventPayload = payload_of(ApologyEvent, "ApologyEvent")
DeadlineEventPayload = payload_of(DeadlineEvent, "DeadlineEvent")


def register_consumers(router: KafkaRouter, deps: Deps) -> None:
    settings, topics = deps.settings, deps.settings.topics

    @router.subscriber(topics.dossier_events, **batch_options(settings),
                       description="Dossier events (events.md): stored redacted, folded into their states")
    async def on_dossier_events(payload: DossierEventPayload, msg: KafkaMessage) -> None:
        deps.metrics.stored(await deps.dossier_events.run(msg.raw_message))

    @router.subscriber(topics.apology_events, **batch_options(settings, group_suffix=APOLOGY_GROUP),
                       description="Apology events: the first apology.issued instant of each dossier")
    async def on_apology_events(payload: ApologyEventPayload, msg: KafkaMessage) -> None:
        deps.metrics.stored(await deps.apology_events.run(msg.raw_message))

    @router.subscriber(topics.deadline_events, **batch_options(settings, group_suffix=DEADLINE_GROUP),
                       description="Deadline events: first closes, counted by agency and outcome")
    async def on_deadline_events(payload: DeadlineEventPayload, msg: KafkaMessage) -> None:
        deps.metrics.stored(await deps.deadline_events.run(msg.raw_message))
