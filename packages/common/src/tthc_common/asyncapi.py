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

`asyncapi_router` serves the document (`/asyncapi`, `/asyncapi.json`, `/asyncapi.yaml`) from the moment the
app exists. FastStream's own docs router is not used: it also mounts `POST /asyncapi/try`, which publishes any
JSON to any topic through the service's broker without a key (and, in its "dry run" mode, swaps the running
broker for an in-memory one for up to 30 s).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from faststream.specification.asyncapi import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
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


def asyncapi_document(broker: Any, *, title: str, version: str = "0.1.0", description: str | None = None) -> Any:
    """The AsyncAPI 3.0 specification of what `broker`'s subscribers consume and its publishers declare."""
    return AsyncAPI(broker, title=title, version=version, description=description,
                    schema_version="3.0.0").to_specification()


def asyncapi_router(broker: Any, *, title: str, version: str = "0.1.0", description: str | None = None) -> APIRouter:
    """`GET /asyncapi` (the rendered page), `/asyncapi.json`, `/asyncapi.yaml`; read-only, outside the OpenAPI
    document like `/docs`."""
    docs = APIRouter(include_in_schema=False)

    def document() -> Any:
        return asyncapi_document(broker, title=title, version=version, description=description)

    @docs.get("/asyncapi")
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(document(), try_it_out_path=None))

    @docs.get("/asyncapi.json")
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(document().to_jsonable())

    @docs.get("/asyncapi.yaml")
    async def asyncapi_yaml() -> Response:
        return Response(document().to_yaml(), media_type="application/yaml")

    return docs
