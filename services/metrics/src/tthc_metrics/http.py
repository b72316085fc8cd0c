"""`GET /v1/indices`: the figures of indices.md for a period, as JSON (indices.json) or CSV.

    GET /v1/indices?from=2026-01-01&to=2026-01-31[&group_by=agency,field][&until=2026-02-01T00:00:00%2B07:00]
                   [&format=csv]

- `from`, `to`: local dates, both inclusive (P0 00:00 to P1 24:00);
- `group_by`: `agency`, `field`, `procedure`, `channel`, repeated or comma-separated; default all four;
- `until`: optional RFC 3339 instant with offset: the figures as of that instant (like `tthc replay
  --until`); without it, as of the service's watermark. Either way never past P1 24:00.
- JSON (default): the `indices.json` shape of `tthc replay` (`from`, `to`, `total`, `by_<grouping>`)
  plus `cut`, the instant the figures stand at (RFC 3339, +07:00), and `names`: for the agency, field
  and procedure tables, each code's name as the dossiers' events give it;
- CSV (`format=csv`, or `Accept: text/csv` without `format`): one row per group (`group_by`, `key`,
  `name`, then every figure in FIGURES order), the total first (`group_by` = `total`, empty `key`); an
  undefined figure is an empty cell.

Bad parameters: 422 in the one error shape `{"errors": [{"field", "reason"}]}`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, create_model

from tthc_common.db import run_in_transaction
from tthc_common.errors import ApiError, Problem, error_responses
from tthc_core.indices import FIGURES, GROUPINGS, Period

from . import queries

if TYPE_CHECKING:
    from .app import Deps

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# No event is older (events.md, Bounds): earlier periods and instants are refused, not computed.
EARLIEST = date(2000, 1, 1)
TOO_EARLY = "before 2000-01-01: no event is that old"
CSV_MEDIA_TYPE = "text/csv"
FORMATS = ("json", "csv")

# -- the answer, as OpenAPI documents it ----------------------------------------------------------------
# every figure of indices.md: counts, or rates rounded to 4 decimals (null: undefined)
Figures = create_model(  # type: ignore[call-overload]
    "Figures", **{figure: (int | float | None, Field(default=None)) for figure in FIGURES})


class IndicesReport(BaseModel):
    from_: date = Field(alias="from", description="P0 (inclusive)")
    to: date = Field(description="P1 (inclusive)")
    total: Figures  # type: ignore[valid-type]
    by_agency: dict[str, Figures] | None = Field(  # type: ignore[valid-type]
        default=None, description="by handling agency code, as it stood at the cut")
    by_field: dict[str, Figures] | None = None  # type: ignore[valid-type]
    by_procedure: dict[str, Figures] | None = None  # type: ignore[valid-type]
    by_channel: dict[str, Figures] | None = None  # type: ignore[valid-type]
    cut: str = Field(description="the instant the figures stand at (RFC 3339, +07:00)")
    names: dict[str, dict[str, str]] = Field(
        description="grouping (agency, field, procedure) -> code -> name, from the dossiers' events")


CSV_EXAMPLE = ("group_by,key,name," + ",".join(FIGURES)
               + "\r\ntotal,,,120,...\r\nagency,000.00.12.H10,Sở Tư pháp,...")


# -- parameters --------------------------------------------------------------------------------------
def _date(name: str, text: str | None, problems: list[Problem]) -> date | None:
    if text is None or text == "":
        problems.append(Problem(field=name, reason="required (a date YYYY-MM-DD)"))
        return None
    if not _DATE.match(text):
        problems.append(Problem(field=name, reason="not a date YYYY-MM-DD"))
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        problems.append(Problem(field=name, reason=f"not a valid date: {exc}"))
        return None
    if day < EARLIEST:
        problems.append(Problem(field=name, reason=TOO_EARLY))
        return None
    return day


def _until(text: str | None, problems: list[Problem]) -> datetime | None:
    if text is None or text == "":
        return None
    # An unencoded '+' in a query string arrives as a space: '...T00:00:00 07:00' meant '+07:00'.
    text = re.sub(r" (\d\d:\d\d)$", r"+\1", text)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        problems.append(Problem(field="until", reason="not an RFC 3339 timestamp"))
        return None
    if at.tzinfo is None:
        problems.append(Problem(field="until",
                                reason="timestamp must carry a UTC offset (naive timestamps are refused)"))
        return None
    if at.date() < EARLIEST:
        problems.append(Problem(field="until", reason=TOO_EARLY))
        return None
    return at


def _groupings(values: list[str], problems: list[Problem]) -> tuple[str, ...]:
    asked = [g.strip() for v in values for g in v.split(",") if g.strip()]
    unknown = sorted({g for g in asked if g not in GROUPINGS})
    if unknown:
        problems.append(Problem(field="group_by", reason=f"unknown grouping (one of {', '.join(GROUPINGS)})"))
    if not asked:
        return GROUPINGS
    return tuple(g for g in GROUPINGS if g in asked)  # the canonical order, each once


def _format(text: str | None, accept: str | None, problems: list[Problem]) -> str:
    if text is None or text == "":
        return "csv" if wants_csv(accept) else "json"
    if text not in FORMATS:
        problems.append(Problem(field="format", reason="unknown format (json or csv)"))
    return text


def parse_parameters(from_text: str | None, to_text: str | None, group_by: list[str], until_text: str | None,
                     format_text: str | None = None, accept: str | None = None,
                     ) -> tuple[Period, tuple[str, ...], datetime | None, str]:
    """The period, the groupings, `until` and the format; ApiError 422 naming every bad parameter."""
    problems: list[Problem] = []
    start = _date("from", from_text, problems)
    end = _date("to", to_text, problems)
    if start is not None and end is not None and end < start:
        problems.append(Problem(field="to", reason="is before from"))
    if end is not None and end >= date.max:
        problems.append(Problem(field="to", reason="out of range"))  # P1 24:00 would not be a date
    groupings = _groupings(group_by, problems)
    until = _until(until_text, problems)
    answer_format = _format(format_text, accept, problems)
    if problems:
        raise ApiError(422, problems=problems)
    assert start is not None and end is not None
    return Period(start, end), groupings, until, answer_format


def wants_csv(accept: str | None) -> bool:
    """CSV when `text/csv` is acceptable and comes before any JSON media type in the header."""
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == CSV_MEDIA_TYPE:
            return True
        if media in ("application/json", "application/*"):
            return False
    return False


# -- CSV ----------------------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    return "" if value is None else value


def indices_csv(result: dict[str, Any], groupings: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["group_by", "key", "name", *FIGURES])
    writer.writerow(["total", "", "", *(_cell(result["total"].get(f)) for f in FIGURES)])
    names = result.get("names", {})
    for grouping in groupings:
        for key, row in result[f"by_{grouping}"].items():
            name = names.get(grouping, {}).get(key, "")
            writer.writerow([grouping, key, name, *(_cell(row.get(f)) for f in FIGURES)])
    return out.getvalue()


# -- the route ----------------------------------------------------------------------------------------
def router(deps: Deps) -> APIRouter:
    api = APIRouter(tags=["indices"])

    @api.get(
        "/v1/indices",
        summary="Index figures of a period (indices.md), as JSON or CSV",
        response_model=IndicesReport,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
                         "description": "indices.json plus `cut` and `names`; or CSV, one row per group"},
                   **error_responses(422)},
    )
    async def get_indices(
        request: Request,
        from_: Annotated[str | None, Query(alias="from", description="P0, YYYY-MM-DD")] = None,
        to: Annotated[str | None, Query(description="P1, YYYY-MM-DD (inclusive)")] = None,
        group_by: Annotated[list[str] | None, Query(
            description="agency, field, procedure, channel (repeated or comma-separated; default all)"),
        ] = None,
        until: Annotated[str | None, Query(
            description="RFC 3339 instant with offset: the figures as of then (default: the latest event)"),
        ] = None,
        format: Annotated[str | None, Query(  # noqa: A002 - the parameter's public name
            description="json (default) or csv; without it, `Accept: text/csv` asks for CSV",
            json_schema_extra={"enum": list(FORMATS)})] = None,
    ) -> Response:
        period, groupings, until_at, answer_format = parse_parameters(
            from_, to, group_by or [], until, format, request.headers.get("accept"))
        result = await run_in_transaction(
            deps.engine, partial(queries.indices_report, book=deps.book, period=period, until=until_at,
                                 groupings=groupings, basis=deps.basis))
        if answer_format == "csv":
            filename = f"indices_{period.start.isoformat()}_{period.end.isoformat()}.csv"
            return Response(indices_csv(result, groupings), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return JSONResponse(result)

    return api
