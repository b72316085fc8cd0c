"""One error shape for every 4xx of every service, and one page shape for every list (interfaces.md):

    {"errors": [{"index": 3, "field": "data.duration.value", "reason": "must be greater than 0"}]}
    {"items": [...], "page": 1, "page_size": 50, "total": 1234}

`index` is the position of an item in a batch request, `field` the dotted path of what was wrong; both
are left out when they do not apply. A route raises `ApiError(status, reason, field=..., index=...)` (or
several `Problem`s); FastAPI's own validation errors and HTTP errors are turned into the same shape by
`install_error_handlers`, with plain reasons (no pydantic "Value error, " prefixes, never the input).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("tthc.http")

T = TypeVar("T")


class Problem(BaseModel):
    """One thing wrong with a request."""

    index: int | None = Field(default=None, description="position of the item in a batch request")
    field: str | None = Field(default=None, description="dotted path of the field, e.g. data.duration.value")
    reason: str = Field(description="what is wrong, in plain words")


class ErrorBody(BaseModel):
    """Every 4xx answer of every service."""

    errors: list[Problem]


class ApiError(Exception):
    """Raise in a route: answered as `{"errors": [...]}` with `status` (and `headers`)."""

    def __init__(self, status: int, reason: str | None = None, *, field: str | None = None,
                 index: int | None = None, problems: Sequence[Problem] = (),
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.problems = list(problems) or [Problem(index=index, field=field, reason=reason or "")]
        self.headers = headers
        super().__init__("; ".join(p.reason for p in self.problems))


def error_response(status: int, problems: Sequence[Problem], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [p.model_dump(exclude_none=True) for p in problems]}, status_code=status,
                        headers=headers)


def plain_reason(message: str) -> str:
    """pydantic's message without its "Value error, " / "Assertion failed, " prefixes."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _location(loc: Sequence[Any]) -> str | None:
    # FastAPI puts where the value came from first: body, query, path, header, cookie.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or None


def validation_problems(errors: Sequence[dict[str, Any]]) -> list[Problem]:
    return [_problem(e) for e in errors]


def _problem(error: dict[str, Any]) -> Problem:
    if error.get("type") == "json_invalid":
        # FastAPI puts the character position where a field would be: ("body", 12).
        return Problem(reason=f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'malformed')})")
    return Problem(field=_location(error.get("loc", ())), reason=plain_reason(str(error.get("msg", "invalid"))))


# What FastAPI answers (400) when reading a JSON body fails other than by a syntax error: nested deeper than the
# parser's recursion limit, or not UTF-8. Answered like any unreadable body: 422 with a plain reason.
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"
UNREADABLE_BODY = "the body cannot be read as JSON (not UTF-8, or nested too deeply)"


_STATUS_REASONS = {
    400: "bad request", 401: "a valid key is required (Authorization: Bearer <key>)", 403: "forbidden",
    404: "not found", 405: "method not allowed", 406: "not acceptable", 409: "conflict",
    413: "request too large", 415: "unsupported media type", 422: "unprocessable request",
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every 4xx in the one shape; an unexpected exception is a logged 500 with the same shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.problems, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_problems(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == _FASTAPI_BODY_PARSE_ERROR:
            return error_response(422, [Problem(reason=UNREADABLE_BODY)])
        if isinstance(detail, str) and detail and detail != _http_phrase(exc.status_code):
            reason = detail
        else:
            reason = _STATUS_REASONS.get(exc.status_code, _http_phrase(exc.status_code).lower())
        return error_response(exc.status_code, [Problem(reason=reason)], getattr(exc, "headers", None))


def _http_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error statuses a route may answer, all with `ErrorBody`."""
    descriptions = {
        400: "The request cannot be read", 401: "No valid key (Authorization: Bearer <key>)",
        403: "The key may not do this", 404: "Not found", 409: "Conflicts with what exists",
        413: "Too large", 415: "Content-Type must be application/json",
        422: "Invalid: every problem is listed with its field", 503: "A dependency is unavailable; retry later",
    }
    return {s: {"model": ErrorBody, "description": descriptions.get(s, _http_phrase(s))} for s in statuses}


# -- request bodies ------------------------------------------------------------------------------------
def is_json(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (`; charset=utf-8`)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def require_json(request: Request) -> None:
    """FastAPI dependency of a route taking a JSON body: 415 unless it is sent as `application/json` (FastAPI
    would otherwise read a form or a text body as a string and answer a puzzling 422)."""
    if not is_json(request.headers.get("content-type")):
        raise ApiError(415, "the body must be JSON, sent with Content-Type: application/json")


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused (413, the one error shape) before it is read
    whole: at once when `Content-Length` says so, else as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _reason(self) -> str:
        return f"the body exceeds {self.max_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, [Problem(reason=self._reason())])(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised where the route reads its body: FastAPI lets an HTTPException through to the handlers.
                raise HTTPException(413, self._reason())
            return message

        await self.app(scope, limited, send)


# -- pages ---------------------------------------------------------------------------------------------
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# Far beyond any real list, and small enough that (page - 1) * page_size fits every database's integers.
MAX_PAGE = 1_000_000


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    page: int = Field(description="1-based page number")
    page_size: int = Field(description=f"items per page (at most {MAX_PAGE_SIZE})")
    total: int = Field(description="items in the whole list")


class PageRequest(BaseModel):
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_request(
    page: int = Query(1, ge=1, le=MAX_PAGE, description="1-based page number"),
    page_size: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE,
                           description=f"items per page, 1-{MAX_PAGE_SIZE}; more is refused (422)"),
) -> PageRequest:
    """FastAPI dependency: `?page=&page_size=`, refused (422) beyond the documented bounds, never capped."""
    return PageRequest(page=page, page_size=page_size)
