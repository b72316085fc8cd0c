"""What a batch subscriber consumes, declared for the AsyncAPI document (`/asyncapi`) without letting
FastStream parse it.

FastStream documents a subscriber's payload from its handler's body parameter, and validates the body
against it. A batch subscriber must not validate: its `BatchRunner` parses each record itself, so that a
record that does not parse is set aside on the dead-letter topic instead of failing the whole batch. So:

    @router.subscriber(topic, **batch_options(settings))        # batch_options sets decoder=undecoded
    async def on_deadline_events(_: payload_of(DeadlineEvent), msg: KafkaMessage) -> None:
        ...

`undecoded` hands the handler an empty body (the records stay in `msg.raw_message`), and `payload_of(model)`
accepts that while its JSON Schema is the model's: one message of the topic, as a vendor generates code
for. What a service publishes (through its outbox relay) is declared with `declare_publisher`.
"""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


async def undecoded(_message: Any, _decoder: Any) -> tuple[()]:
    """FastStream decoder that decodes nothing: the batch's records are parsed by its `BatchRunner`. The
    empty tuple stands for the body (None would read as a missing parameter)."""
    return ()


def payload_of(model: Any, name: str | None = None) -> type:
    """A parameter type whose JSON Schema is `model`'s and which accepts any value (see above)."""

    class Payload:
        @classmethod
        def __get_pydantic_core_schema__(cls, _source: Any, handler: GetCoreSchemaHandler) -> Any:
            return core_schema.no_info_plain_validator_function(
                lambda value: value, json_schema_input_schema=handler.generate_schema(model))

    Payload.__name__ = Payload.__qualname__ = name or getattr(model, "__name__", "Payload")
    return Payload


def declare_publisher(router: Any, topic: str, payload: Any, *, title: str, description: str) -> None:
    """Declare in the AsyncAPI document that the service publishes `payload` to `topic` (it publishes
    through its outbox relay; this publisher object only describes it)."""
    router.publisher(topic, schema=payload, title=title, description=description)
