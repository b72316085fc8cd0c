"""The Kafka side of the apology service: two batch subscribers, the parsers of their records, and the
declaration of what the service publishes (for the AsyncAPI document at `/asyncapi`).

A record that does not parse is permanent: its `BatchRunner` sets it aside on the dead-letter topic with
the reason, and the rest of the batch is processed (tthc_common.batches).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tthc_common.asyncapi import declare_publisher, payload_of
from tthc_common.batches import record_json
from tthc_common.broker import KafkaMessage, KafkaRouter, batch_options
from tthc_common.dead_letter import PermanentError
from tthc_contracts.derived import DEADLINE_EVENT_MODELS, ApologyEvent, DeadlineEvent, deadline_event_adapter
from tthc_contracts.events import DossierEvent, parse_dossier_event
from tthc_contracts.topics import Topics

if TYPE_CHECKING:
    from .app import Deps

logger = logging.getLogger("tthc.apology.consumers")

# The dossier-events group is the service's own (`tthc-apology` by default); the deadline-events
# subscriber gets a group of its own so the two topics never wait on each other's rebalances.
DEADLINE_GROUP_SUFFIX = ".deadline-events"

# The dossier events the apology rules use; the others are acknowledged without being read further.
DOSSIER_TYPES = frozenset({"dossier.received", "dossier.extended"})
DEADLINE_TYPES = frozenset(m.model_fields["type"].default for m in DEADLINE_EVENT_MODELS)

# One message of each topic, as the AsyncAPI document shows it (the runners parse the records themselves).
DossierEventPayload = payload_of(DossierEvent, "DossierEvent")
DeadlineEventPayload = payload_of(DeadlineEvent, "DeadlineEvent")


def _object(record: Any) -> dict[str, Any]:
    raw = record_json(record)  # not JSON: permanent
    if not isinstance(raw, dict):
        raise PermanentError("an event must be a JSON object")
    return raw


def parse_dossier_record(record: Any) -> Any | None:
    """The typed dossier event if it is one the apology service uses, else None."""
    raw = _object(record)
    if raw.get("type") not in DOSSIER_TYPES:
        return None
    return parse_dossier_event(raw)  # EventValidationError: permanent


def parse_deadline_record(record: Any) -> Any | None:
    """The typed deadline event, or None for a type this version does not know (a newer producer)."""
    raw = _object(record)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise PermanentError("type: missing")
    if kind not in DEADLINE_TYPES:
        logger.info("deadline event of an unknown type ignored", extra={"type": kind[:64]})
        return None
    event = deadline_event_adapter.validate_python(raw)  # ValidationError: permanent
    if event.type == "deadline.overdue" and event.data.handling_agency is None and not event.data.extended:
        raise PermanentError("data.handling_agency: required to address an overdue apology")
    return event


def register_consumers(router: KafkaRouter, deps: Deps) -> None:
    settings, topics = deps.settings, deps.topics

    @router.subscriber(topics.dossier_events, **batch_options(settings),
                       title=f"{topics.dossier_events}:apology",
                       description="Dossier events posted through intake. The apology service keeps each "
                                   "dossier's receipt (dossier.received: what its letters say) and applies "
                                   "dossier.extended (the apology was recorded with the extension: the "
                                   "dossier's drafts are cancelled); other types are acknowledged unread.")
    async def on_dossier_events(payload: DossierEventPayload, msg: KafkaMessage) -> None:
        deps.after(await deps.dossier_events.run(msg.raw_message))

    @router.subscriber(topics.deadline_events, **batch_options(settings, group_suffix=DEADLINE_GROUP_SUFFIX),
                       title=f"{topics.deadline_events}:apology",
                       description="The deadline service's events: deadline.at_risk, deadline.overdue and "
                                   "deadline.closed (late) draft letters; deadline.closed (early, on time) and "
                                   "a moved due date (deadline.scheduled) cancel them.")
    async def on_deadline_events(payload: DeadlineEventPayload, msg: KafkaMessage) -> None:
        deps.after(await deps.deadline_events.run(msg.raw_message))


def declare_publications(router: KafkaRouter, topics: Topics) -> None:
    """What the service publishes, for the AsyncAPI document only: the outbox relay sends it (keyed by
    dossier_id, JSON), never this publisher."""
    declare_publisher(router, topics.apology_events, ApologyEvent, title=f"{topics.apology_events}:apology",
                      description="apology.drafted (a letter is owed: its kind, agency, due date, proposed "
                                  "new appointment, document URL), apology.issued (an officer issued it with "
                                  "its number NN/PXL and new appointment), apology.cancelled (with the reason)."
                                  " Event ids are UUIDv5 of the cause: a replay publishes the same events.")
