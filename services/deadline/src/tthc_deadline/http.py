"""GET /v1/dossiers/{dossier_id} and GET /v1/dossiers (interfaces.md): the `dossiers.jsonl` fields, with
`state` at the service's watermark (its event time), which each answer also gives in `X-Event-Time`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tthc_common.db import run_in_transaction
from tthc_common.errors import ApiError, Page, PageRequest, error_responses, page_request
from tthc_contracts import format_ts
from tthc_core.deadlines import STATES, Dossier

from .queries import get_dossier, list_dossiers

if TYPE_CHECKING:
    from .app import Deps

StateName = Literal["open", "at_risk", "overdue", "awaiting_supplement", "paused", "closed"]
assert set(StateName.__args__) == set(STATES)  # type: ignore[attr-defined]
EVENT_TIME_HEADER = "X-Event-Time"


class DossierView(BaseModel):
    """One dossier as `tthc replay` writes it in `dossiers.jsonl` (interfaces.md); timestamps RFC 3339 in
    +07:00, null where absent."""

    model_config = ConfigDict(extra="allow")

    dossier_id: str
    handling_agency: str = Field(description="code of the agency holding the dossier (last transfer target)")
    procedure_code: str
    field_code: str
    channel: Literal["in_person", "online", "postal"]
    received_at: str
    start_at: str = Field(description="when the clock started (office time, receipt cut-off)")
    due_at_receipt: str = Field(description="the due date computed at receipt (deadlines.md §3)")
    due_at: str = Field(description="the committed due date after supplementation restarts and pauses")
    extended_due_at: str | None = Field(description="the new appointment of a dossier.extended")
    at_risk_at: str | None = Field(description="one working day before due_at (null: no at-risk moment)")
    state: StateName
    outcome: Literal["early", "on_time", "late"] | None
    closed_at: str | None
    late_by_hours: float | None = Field(description="office hours late, 2 decimals")
    supplement_requests: int
    extensions: int
    appointment_at: str | None = Field(default=None, description="the NgayHenTra printed on the receipt slip")
    appointment_gap_hours: float | None = Field(
        default=None, description="office hours between due_at_receipt and appointment_at (deadlines.md §9)")


def dossier_view(state: Dossier, watermark: datetime | None) -> dict[str, Any]:
    """`Dossier.row()` as of the service watermark (the stored state may be a sweep behind it)."""
    if watermark is not None and (state.watermark is None or watermark > state.watermark):
        state.watermark = watermark  # a view only: nothing is emitted or stored
    return state.row()


_EVENT_TIME = {"headers": {EVENT_TIME_HEADER: {
    "description": "the service's watermark (its event time) the answer stands at, RFC 3339 in +07:00; empty "
                   "before the first event", "schema": {"type": "string"}}}}


def router(deps: Deps) -> APIRouter:
    api = APIRouter(prefix="/v1/dossiers", tags=["dossiers"])
    engine = deps.engine

    @api.get("/{dossier_id}", response_model=DossierView, responses={200: _EVENT_TIME, **error_responses(404, 422)})
    async def read_dossier(response: Response,
                           dossier_id: Annotated[str, Path(min_length=1, max_length=64)]) -> dict[str, Any]:
        """One dossier's deadline state."""
        found = await run_in_transaction(engine, lambda s: get_dossier(s, dossier_id))
        if found.state is None:
            if found.held_events:
                raise ApiError(404, f"no dossier.received yet: its {found.held_events} other event(s) are held "
                               "until it arrives", field="dossier_id")
            raise ApiError(404, "no event of this dossier has been received", field="dossier_id")
        response.headers[EVENT_TIME_HEADER] = format_ts(found.watermark) or ""
        return dossier_view(found.state, found.watermark)

    @api.get("", response_model=Page[DossierView], responses={200: _EVENT_TIME, **error_responses(422)})
    async def search_dossiers(
        response: Response,
        paging: Annotated[PageRequest, Depends(page_request)],
        agency: Annotated[str | None, Query(max_length=64, description="handling agency code")] = None,
        state: StateName | None = None,
    ) -> dict[str, Any]:
        """Dossiers by agency and state, ordered by dossier id."""
        rows, total, watermark = await run_in_transaction(engine, lambda s: list_dossiers(
            s, agency=agency, state=state, offset=paging.offset, limit=paging.page_size))
        response.headers[EVENT_TIME_HEADER] = format_ts(watermark) or ""
        return {"items": [dossier_view(d, watermark) for d in rows], "page": paging.page,
                "page_size": paging.page_size, "total": total}

    return api
