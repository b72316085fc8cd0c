"""Intake's HTTP API (interfaces.md): `POST /v1/events`, `POST /v1/dvcqg` (the national portal's bodies,
dvcqg.md), the JSON Schemas of every event, and the OpenAPI document that describes them (with the event union
and the portal's bodies as request bodies, with examples).

`accept_events(deps, source, raws)` is the whole path from raw v1 events to the answer (validate, drop
duplicates, publish in one Kafka transaction, record), so that every way into intake takes events the
same way. A request is refused whole or every new event of it is in Kafka before the 202 leaves.
`POST /v1/dvcqg` translates its body (`tthc_contracts.dvcqg.translate`, with the progress steps kept for its
dossiers) and hands the events to `accept_events`, which keeps the new steps with the accepted ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, TypeAdapter
from tthc_common.db import run_in_transaction
from tthc_common.errors import ApiError, Page, PageRequest, Problem, error_responses, page_request
from tthc_common.logging import event_log_fields
from tthc_common.publish import message_for
from tthc_contracts.dvcqg import MAX_ITEMS, PROGRESS, Origin, ProgressStep, progress_dossiers, translate
from tthc_contracts.events import DOSSIER_EVENT_TYPES, MAX_NESTING, DossierEvent
from tthc_contracts.schema import committed_schemas, example_events
from tthc_contracts.timefmt import utcnow

from . import dvcqg_schemas
from .metrics import RejectReason
from .publisher import BrokerUnavailable, PublishRefused
from .queries import already_accepted, kept_steps
from .units import record_accepted
from .validation import (
    MalformedBody,
    decode_json,
    foreign_sources,
    is_json,
    oversized,
    raw_events,
    split_duplicates,
    validate_events,
)

if TYPE_CHECKING:
    from .app import Deps

logger = logging.getLogger("tthc.intake")

source_key = HTTPBearer(auto_error=False, scheme_name="sourceKey", description=(
    "The key of the one-stop system, bound to one `source` (set up with `INTAKE_SOURCE_KEYS`)."))


class Accepted(BaseModel):
    """Every event of the request is durably in Kafka (or was accepted before)."""

    accepted: int = Field(description="new events, published")
    duplicates: int = Field(description=(
        "events already accepted before (same source and event_id), not published again"))


class SchemaLink(BaseModel):
    type: str = Field(description="the event type, e.g. dossier.received")
    id: str = Field(description="the schema's $id")
    href: str = Field(description="where intake serves the schema")
    description: str
    posted_to_intake: bool = Field(description="true for the dossier events one-stop software posts")


class BodyTooLarge(Exception):
    pass


async def read_body_capped(request: Request, limit: int) -> bytes:
    """The body, refusing early: by Content-Length when given, else while streaming."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(deps: Deps, status: int, reason: RejectReason, problems: list[Problem], *,
             headers: dict[str, str] | None = None) -> ApiError:
    """The error to raise, counted and logged by its reason class (never by what the request held)."""
    deps.metrics.rejected.labels(reason.value).inc()
    logger.info("request refused", extra={"status": status, "reason": reason.value})
    return ApiError(status, problems=problems, headers=headers)


def _database_unavailable(deps: Deps) -> ApiError:
    return _refusal(deps, 503, RejectReason.DATABASE_UNAVAILABLE,
                    [Problem(reason="the database is unavailable; retry later")],
                    headers={"Retry-After": str(deps.settings.retry_after_s)})


async def accept_events(deps: Deps, source: str, raws: Sequence[Any], *,
                        steps: Mapping[str, Sequence[ProgressStep]] | None = None) -> Accepted:
    """Raw v1 events of `source`, all taken or none: the answer, or an ApiError (403, 413, 422, 503).

    `steps`: national-portal progress steps by MaHoSo, kept with the accepted ids once Kafka took the events
    (never when the request is refused)."""
    settings, metrics = deps.settings, deps.metrics
    refuse = partial(_refusal, deps)
    retry_later = {"Retry-After": str(settings.retry_after_s)}
    if wrong := foreign_sources(raws, source):
        raise refuse(403, RejectReason.WRONG_SOURCE, wrong)
    latest = utcnow() + timedelta(seconds=settings.max_event_lead_s)
    events, invalid = validate_events(raws, latest_occurred_at=latest)
    if invalid:
        metrics.invalid_events.inc(len({p.index for p in invalid}))
        raise refuse(422, RejectReason.INVALID, invalid)
    topic = settings.topics.dossier_events
    messages = [message_for(topic, e, key=e.dossier_id) for e in events]
    if too_large := oversized(messages, settings.max_event_bytes):
        raise refuse(413, RejectReason.TOO_LARGE, too_large)

    try:
        seen = await run_in_transaction(deps.engine, partial(_accepted_before, source=source, events=events))
    except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the sender
        logger.warning("duplicate check failed", extra={"error": type(exc).__name__})
        raise _database_unavailable(deps) from None
    new_at, duplicate_at = split_duplicates(events, seen)
    new, duplicates = [events[i] for i in new_at], [events[i] for i in duplicate_at]
    try:
        await deps.publisher.publish([messages[i] for i in new_at])
    except PublishRefused as exc:
        raise refuse(413, RejectReason.TOO_LARGE, [Problem(index=new_at[exc.index], reason=exc.reason)]) from None
    except BrokerUnavailable as exc:
        # Nothing of the request is readable (the transaction was not committed): the sender retries it all.
        raise refuse(503, RejectReason.KAFKA_UNAVAILABLE, [Problem(reason=f"{exc}; retry later")],
                     headers=retry_later) from None

    try:
        await run_in_transaction(deps.engine, partial(record_accepted, events=new, source=source, steps=steps))
    except Exception as exc:  # noqa: BLE001
        # The events ARE durably in Kafka, so 202 is the truth. Only the duplicate check is weakened: a
        # retry of this request would publish them again, and every consumer ignores a (source, event_id)
        # it has already processed.
        logger.error("accepted events published but not recorded", extra={"error": type(exc).__name__,
                                                                           "count": len(new)})
        if steps:
            # But steps not kept would be missing when the dossier's next step is paired: the sender must
            # send the request again (its events keep their ids: consumers see duplicates, nothing twice).
            raise _database_unavailable(deps) from None
    for event in new:
        metrics.accepted.labels(event.type).inc()
        logger.debug("event accepted", extra={"source": source, **event_log_fields(event)})
    for event in duplicates:
        metrics.duplicates.labels(event.type).inc()
        logger.debug("duplicate event ignored", extra={"source": source, **event_log_fields(event)})
    metrics.batch_size.observe(len(events))
    logger.info("events accepted", extra={"source": source, "accepted": len(new), "duplicates": len(duplicates)})
    return Accepted(accepted=len(new), duplicates=len(duplicates))


def _accepted_before(session: Any, *, source: str, events: list[Any]) -> set[str]:
    return already_accepted(session, source, (e.event_id for e in events))


def router(deps: Deps) -> APIRouter:
    api = APIRouter()
    settings = deps.settings
    refuse = partial(_refusal, deps)

    def authenticated_source(credentials: HTTPAuthorizationCredentials | None) -> str:
        holder = deps.keys.identify(credentials.credentials if credentials else None)
        if holder is None:
            raise refuse(401, RejectReason.UNAUTHORIZED, [Problem(reason=(
                "a valid source key is required (Authorization: Bearer <key>)"))],
                headers={"WWW-Authenticate": "Bearer"})
        return holder.name

    async def json_body(request: Request) -> bytes:
        if not is_json(request.headers.get("content-type")):
            raise refuse(415, RejectReason.UNSUPPORTED_MEDIA_TYPE, [Problem(reason=(
                "the body must be JSON, sent with Content-Type: application/json"))])
        try:
            return await read_body_capped(request, settings.max_body_bytes)
        except BodyTooLarge:
            raise refuse(413, RejectReason.TOO_LARGE, [Problem(reason=(
                f"the body exceeds {settings.max_body_bytes:,} bytes"))]) from None

    @api.post(
        "/v1/events", status_code=202, tags=["events"], response_model=Accepted,
        summary="Post one dossier event, or an array of up to 1000, all or nothing",
        description=(
            "Validates every event against the v1 contract and its bounds (events.md), drops events already "
            "accepted (same `source` and `event_id`), and publishes the new ones to Kafka in one transaction, "
            "keyed by `dossier_id`. 202 once Kafka acknowledged every event; any refusal lists every problem "
            "with the event's `index` and the `field`, and nothing of the request is published."),
        responses={
            202: {"description": "Every event of the request is durably in Kafka, or was accepted before"},
            **error_responses(401, 403, 413, 415, 422, 503),
            401: {**error_responses(401)[401], "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
            503: {**error_responses(503)[503], "headers": {"Retry-After": {
                "description": "seconds to wait before sending the same request again",
                "schema": {"type": "integer"}}}},
        },
        openapi_extra={"requestBody": _request_body_openapi(settings.max_events_per_request)},
    )
    async def post_events(request: Request,
                          credentials: HTTPAuthorizationCredentials | None = Depends(source_key)) -> Accepted:
        source = authenticated_source(credentials)
        body = await json_body(request)
        try:
            raws = raw_events(body)
        except MalformedBody as exc:
            raise refuse(422, RejectReason.MALFORMED, [Problem(reason=str(exc))]) from None
        if len(raws) > settings.max_events_per_request:
            raise refuse(413, RejectReason.TOO_LARGE, [Problem(reason=(
                f"{len(raws)} events: at most {settings.max_events_per_request} per request"))])
        return await accept_events(deps, source, raws)

    @api.post(
        "/v1/dvcqg", status_code=202, tags=["national portal (DVCQG)"], response_model=dvcqg_schemas.DvcqgAccepted,
        summary="Post the national portal's bodies (DongBoHoSoMC, CapNhatTienDoHoSoMC), all or nothing",
        description=(
            "The body a one-stop system already sends the national public-service portal (dvcqg.md), with the "
            "same source key as `POST /v1/events`. Each `DongBoHoSoMC` snapshot becomes the v1 events it implies, "
            "each `CapNhatTienDoHoSoMC` step is kept per dossier and a step 6 (financial obligation) pauses the "
            "clock until the next step 2, 4 or 5; the events are then taken exactly as `POST /v1/events` takes "
            "them (validation, duplicates, one Kafka transaction). Event ids are derived from the items, so a "
            "snapshot sent again publishes nothing twice. **This endpoint answers in the portal's convention**, "
            '`{"error_code": "0", ...}` or `{"error_code": "-1", "message", "errors": [{"index", "field", '
            '"reason"}]}` with the item\'s position and its DVCQG field name, not the `{"errors"}` shape of the '
            "other endpoints. 501 when this deployment has no procedure catalogue (`INTAKE_DVCQG_CATALOGUE`)."),
        responses={
            202: {"description": "Every event the request implies is durably in Kafka, or was accepted before"},
            **_dvcqg_refusals({
                401: "No valid source key (Authorization: Bearer <key>)",
                413: f"The body is too large, or holds more than {MAX_ITEMS} items",
                415: "Content-Type must be application/json",
                422: "An item is refused (every problem listed with its index and DVCQG field), or the body is "
                     "not JSON: nothing of the request was published",
                501: "This deployment takes no national-portal bodies: it has no procedure catalogue "
                     "(INTAKE_DVCQG_CATALOGUE)",
                503: "Kafka or the database is unavailable; send the same request again later",
            }),
        },
        openapi_extra={"requestBody": dvcqg_schemas.request_body_openapi(_COMPONENT)},
    )
    async def post_dvcqg(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(source_key)) -> JSONResponse:
        try:
            source = authenticated_source(credentials)
            if deps.catalogue is None:
                raise refuse(501, RejectReason.NOT_CONFIGURED, [Problem(reason=(
                    "this intake takes no national-portal bodies: it has no procedure catalogue "
                    "(INTAKE_DVCQG_CATALOGUE); post v1 events to /v1/events, or ask the operator to set it"))])
            try:
                body = decode_json(await json_body(request), max_depth=MAX_NESTING,
                                   too_deep=f"JSON nested deeper than {MAX_NESTING} levels")
            except MalformedBody as exc:
                raise refuse(422, RejectReason.MALFORMED, [Problem(reason=str(exc))]) from None
            items = body.get("data") if isinstance(body, dict) else None
            if isinstance(items, list) and len(items) > MAX_ITEMS:
                raise refuse(413, RejectReason.TOO_LARGE, [Problem(field="data", reason=(
                    f"{len(items)} items: at most {MAX_ITEMS} per request"))])
            progress = isinstance(body, dict) and body.get("service") == PROGRESS
            # Two progress requests of one dossier must not each pair its steps without the other's.
            serialised: AbstractAsyncContextManager[Any] = deps.progress_lock if progress else nullcontext()
            async with serialised:
                accepted = await take_dvcqg(body, source, progress)
        except ApiError as exc:
            return dvcqg_schemas.refusal_answer(exc.status, exc.problems, exc.headers)
        return dvcqg_schemas.accepted_answer(accepted.accepted, accepted.duplicates, len(body["data"]))

    async def take_dvcqg(body: Any, source: str, progress: bool) -> Accepted:
        kept: dict[str, list[ProgressStep]] = {}
        if progress:
            try:
                kept = await run_in_transaction(deps.engine, partial(
                    kept_steps, source=source, dossier_ids=progress_dossiers(body)))
            except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the sender
                logger.warning("reading the kept steps failed", extra={"error": type(exc).__name__})
                raise _database_unavailable(deps) from None
        assert deps.catalogue is not None
        # In a worker thread: 1000 snapshots take some 100 ms to translate, which the event loop need not wait.
        translation = await anyio.to_thread.run_sync(translate, body, deps.catalogue, source, kept)
        if translation.refused:
            raise refuse(422, RejectReason.INVALID, [Problem(**e) for e in translation.errors])
        try:
            return await accept_events(deps, source, translation.events, steps=translation.new_steps)
        except ApiError as exc:  # a v1 refusal of a derived event, named by its item and DVCQG field
            raise ApiError(exc.status, problems=_as_items(exc.problems, translation.origins),
                           headers=exc.headers) from None

    schemas = committed_schemas()

    @api.get("/v1/schemas", tags=["schemas"], response_model=Page[SchemaLink],
             summary="The JSON Schema of every event, with links", responses=error_responses(422))
    async def list_schemas(request: Request, page: PageRequest = Depends(page_request)) -> Page[SchemaLink]:
        links = [SchemaLink(type=name, id=schema.get("$id", ""), description=schema.get("description", ""),
                            href=str(request.url_for("get_schema", event_type=name).path),
                            posted_to_intake=name in DOSSIER_EVENT_TYPES)
                 for name, schema in schemas.items()]
        return Page(items=links[page.offset:page.offset + page.page_size], page=page.page,
                    page_size=page.page_size, total=len(links))

    @api.get("/v1/schemas/{event_type}", tags=["schemas"], name="get_schema",
             summary="The JSON Schema (2020-12) of one event type",
             response_class=Response,  # the 200 is documented below as application/schema+json, nothing else
             responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}},
                              "description": "the schema"}, **error_responses(404, 422)})
    async def get_schema(event_type: str) -> JSONResponse:
        if event_type not in schemas:
            raise ApiError(404, "no such event type; GET /v1/schemas lists them", field="event_type")
        return JSONResponse(schemas[event_type], media_type="application/schema+json")

    openapi_cache: dict[str, dict[str, Any]] = {}

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        if "document" not in openapi_cache:
            openapi_cache["document"] = _openapi_document(request.app)
        return JSONResponse(openapi_cache["document"])

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="TTHC intake: API")

    return api


def _as_items(problems: Sequence[Problem], origins: Sequence[Origin]) -> list[Problem]:
    """Problems of derived v1 events (indexed by event) as problems of the request's items."""
    named = []
    for p in problems:
        if p.index is None:
            named.append(p)
            continue
        origin = origins[p.index]
        named.append(Problem(index=origin.index, field=None if p.field is None else origin.field(p.field),
                             reason=p.reason))
    return named


def _dvcqg_refusals(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the refusals of `POST /v1/dvcqg`, all in the portal's shape."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": dvcqg_schemas.DvcqgRefusal, "description": description}
        for status, description in statuses.items()}
    responses[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    responses[503]["headers"] = {"Retry-After": {"description": "seconds to wait before sending the same request "
                                                                "again", "schema": {"type": "integer"}}}
    return responses


# -- OpenAPI ------------------------------------------------------------------------------------------
_COMPONENT = "#/components/schemas/{model}"
_event_union_schema = TypeAdapter(DossierEvent).json_schema(ref_template=_COMPONENT)


def _request_body_openapi(max_events: int) -> dict[str, Any]:
    examples = example_events()
    batch = [examples["dossier.received"]["value"], examples["dossier.resolved"]["value"],
             examples["dossier.returned"]["value"]]
    return {
        "required": True,
        "description": f"One v1 dossier event, or a JSON array of 1 to {max_events} (events.md).",
        "content": {"application/json": {
            "schema": {"oneOf": [
                {"$ref": _COMPONENT.format(model="DossierEvent")},
                {"type": "array", "items": {"$ref": _COMPONENT.format(model="DossierEvent")}, "minItems": 1,
                 "maxItems": max_events},
            ]},
            "examples": {**examples, "batch": {
                "summary": "a batch: received, resolved and returned, one dossier",
                "description": "an array is accepted or refused whole", "value": batch}},
        }},
    }


def _openapi_document(app: Any) -> dict[str, Any]:
    """FastAPI's document, with the event union and its models as components (the request body is read by
    intake itself, so FastAPI does not know them)."""
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    union = dict(_event_union_schema)
    defs = union.pop("$defs", {})
    portal = dvcqg_schemas.body_components(_COMPONENT)
    clash = (set(defs) | {"DossierEvent"}) & set(components) | (set(portal) & (set(components) | set(defs)))
    if clash:
        raise RuntimeError(f"OpenAPI component names used twice: {sorted(clash)}")
    components.update(defs)
    components["DossierEvent"] = {**union, "description": "one v1 dossier event; `type` says which"}
    components.update(portal)
    return document
