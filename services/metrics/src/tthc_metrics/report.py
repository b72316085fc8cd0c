"""`GET /v1/indices`: the figures of indices.md for a period, as JSON (indices.json) or CSV.

    GET /v1/indices?from=2026-01-01&to=2026-01-31[&group_by=agency,field][&until=2026-02-01T00:00:00%2B07:00]

- `from`, `to`: local dates, both inclusive (P0 00:00 to P1 24:00);
- `group_by`: `agency`, `field`, `procedure`, `channel`, repeated or comma-separated; default all four;
- `until`: optional RFC 3339 instant with offset: the figures as of that instant (like `tthc replay
  --until`); without it, as of the service's watermark. Either way never past P1 24:00.
- JSON (default): the `indices.json` shape of `tthc replay` (`from`, `to`, `total`, `by_<grouping>`)
  plus `cut`, the instant the figures stand at (RFC 3339, +07:00);
- `Accept: text/csv`: one row per group (`group_by`, `key`, then every figure in FIGURES order), the
  total first (`group_by` = `total`, empty `key`); an undefined figure is an empty cell.

Bad parameters give 422 `{"errors": [{"field", "reason"}]}`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine

from tthc_core.calendar import CalendarBook
from tthc_core.indices import FIGURES, GROUPINGS, Period

from .figures import cut_for, indices_report
from .store import read_watermark

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CSV_MEDIA_TYPE = "text/csv"


class BadParameters(Exception):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors


def _date(name: str, text: str | None, errors: list[dict[str, str]]) -> date | None:
    if text is None or text == "":
        errors.append({"field": name, "reason": "required (a date YYYY-MM-DD)"})
        return None
    if not _DATE.match(text):
        errors.append({"field": name, "reason": "not a date YYYY-MM-DD"})
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        errors.append({"field": name, "reason": f"not a valid date: {exc}"})
        return None


def _until(text: str | None, errors: list[dict[str, str]]) -> datetime | None:
    if text is None or text == "":
        return None
    # An unencoded '+' in a query string arrives as a space: '...T00:00:00 07:00' meant '+07:00'.
    text = re.sub(r" (\d\d:\d\d)$", r"+\1", text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        errors.append({"field": "until", "reason": "not an RFC 3339 timestamp"})
        return None
    if at.tzinfo is None:
        errors.append({"field": "until",
                       "reason": "timestamp must carry a UTC offset (naive timestamps are refused)"})
        return None
    return at


def _groupings(values: list[str], errors: list[dict[str, str]]) -> tuple[str, ...]:
    asked = [g.strip() for v in values for g in v.split(",") if g.strip()]
    unknown = sorted({g for g in asked if g not in GROUPINGS})
    if unknown:
        errors.append({"field": "group_by",
                       "reason": f"unknown grouping {', '.join(unknown)} (one of {', '.join(GROUPINGS)})"})
    if not asked:
        return GROUPINGS
    return tuple(g for g in GROUPINGS if g in asked)  # the canonical order, each once


def parse_parameters(
    from_text: str | None, to_text: str | None, group_by: list[str], until_text: str | None
) -> tuple[Period, tuple[str, ...], datetime | None]:
    errors: list[dict[str, str]] = []
    start = _date("from", from_text, errors)
    end = _date("to", to_text, errors)
    if start is not None and end is not None and end < start:
        errors.append({"field": "to", "reason": "is before from"})
    if end is not None and end >= date.max:
        errors.append({"field": "to", "reason": "out of range"})  # P1 24:00 would not be a date
    groupings = _groupings(group_by, errors)
    until = _until(until_text, errors)
    if errors:
        raise BadParameters(errors)
    assert start is not None and end is not None
    return Period(start, end), groupings, until


def wants_csv(accept: str | None) -> bool:
    """CSV when `text/csv` is acceptable and comes before any JSON media type in the header."""
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == CSV_MEDIA_TYPE:
            return True
        if media in ("application/json", "application/*"):
            return False
    return False


def _cell(value: Any) -> Any:
    return "" if value is None else value


def indices_csv(result: dict[str, Any], groupings: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["group_by", "key", *FIGURES])
    writer.writerow(["total", "", *(_cell(result["total"][f]) for f in FIGURES)])
    for grouping in groupings:
        for key, row in result[f"by_{grouping}"].items():
            writer.writerow([grouping, key, *(_cell(row[f]) for f in FIGURES)])
    return out.getvalue()


def indices_router(engine: Engine, book: CalendarBook) -> APIRouter:
    router = APIRouter(tags=["indices"])

    @router.get("/v1/indices")
    async def get_indices(
        request: Request,
        from_: Annotated[str | None, Query(alias="from", description="P0, YYYY-MM-DD")] = None,
        to: Annotated[str | None, Query(description="P1, YYYY-MM-DD (inclusive)")] = None,
        group_by: Annotated[list[str] | None, Query(description="agency, field, procedure, channel")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 instant; default: the watermark")] = None,
    ) -> Response:
        try:
            period, groupings, until_at = parse_parameters(from_, to, group_by or [], until)
        except BadParameters as bad:
            return JSONResponse({"errors": bad.errors}, status_code=422)
        watermark = None if until_at is not None else await anyio.to_thread.run_sync(read_watermark, engine)
        cut = cut_for(period, watermark, until_at)
        result = await anyio.to_thread.run_sync(partial(indices_report, engine, book, period, cut, groupings))
        if wants_csv(request.headers.get("accept")):
            filename = f"indices_{period.start.isoformat()}_{period.end.isoformat()}.csv"
            return Response(indices_csv(result, groupings), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return JSONResponse(result)

    return router
