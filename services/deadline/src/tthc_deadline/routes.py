"""GET /v1/dossiers/{dossier_id} and GET /v1/dossiers (interfaces.md): the `dossiers.jsonl` fields,
with `state` at the service watermark.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy.engine import Engine

from tthc_common.db import run_in_transaction
from tthc_contracts import format_ts
from tthc_core.deadlines import Dossier

from .config import DeadlineSettings
from .store import get_dossier, list_dossiers

StateFilter = Literal["open", "at_risk", "overdue", "awaiting_supplement", "paused", "closed"]


def dossier_view(state: Dossier, watermark: datetime | None) -> dict[str, Any]:
    """`Dossier.row()` as of the service watermark (the stored state may be a sweep behind it)."""
    if watermark is not None and (state.watermark is None or watermark > state.watermark):
        state.watermark = watermark  # a view only: nothing is emitted or stored
    return state.row()


def dossier_routes(engine: Engine, settings: DeadlineSettings) -> APIRouter:
    router = APIRouter(prefix="/v1/dossiers", tags=["dossiers"])

    @router.get("/{dossier_id}")
    async def read_dossier(dossier_id: str) -> dict[str, Any]:
        found = await run_in_transaction(engine, lambda s: get_dossier(s, dossier_id))
        if found.state is None:
            if found.held_events:
                raise HTTPException(404, detail={
                    "reason": "not_received",
                    "message": "no dossier.received yet: its other events are held until it arrives",
                    "held_events": found.held_events,
                })
            raise HTTPException(404, detail={"reason": "unknown_dossier", "message": "no event of this dossier"})
        return dossier_view(found.state, found.watermark)

    @router.get("")
    async def search_dossiers(
        agency: str | None = Query(default=None, max_length=64, description="handling agency code"),
        state: StateFilter | None = None,
        page: int = Query(default=1, ge=1),
        page_size: int | None = Query(default=None, ge=1),
    ) -> dict[str, Any]:
        size = min(page_size or settings.default_page_size, settings.max_page_size)
        rows, total, watermark = await run_in_transaction(engine, lambda s: list_dossiers(
            s, agency=agency, state=state, offset=(page - 1) * size, limit=size))
        return {
            "items": [dossier_view(d, watermark) for d in rows],
            "page": page,
            "page_size": size,
            "total": total,
            "watermark": format_ts(watermark),
        }

    return router
