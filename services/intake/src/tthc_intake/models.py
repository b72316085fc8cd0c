"""Intake's own tables: the `(source, event_id)` of every event Kafka acknowledged (the duplicate check), and
the national portal's progress steps it accepted (`POST /v1/dvcqg`, dvcqg.md), per source and dossier.

Intake consumes nothing, so it has no processed-events or outbox table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel
from tthc_contracts.timefmt import utcnow


class AcceptedEvent(SQLModel, table=True):
    __tablename__ = "intake_accepted_events"

    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    dossier_id: str = Field(max_length=64)
    accepted_at: datetime = Field(default_factory=utcnow,
                                  sa_column=Column(DateTime(timezone=True), nullable=False))


class DvcqgProgressStep(SQLModel, table=True):
    """One accepted `CapNhatTienDoHoSoMC` item. A dossier's steps, in order of `ThoiDiemXuLy`, say when its
    clock paused for the applicant's financial obligation and when it went on: each new step is read with
    the ones kept before (`tthc_contracts.dvcqg.translate`). The same instant and status sent again is one
    step."""

    __tablename__ = "intake_dvcqg_steps"

    source: str = Field(primary_key=True, max_length=64)
    dossier_id: str = Field(primary_key=True, max_length=64)  # MaHoSo
    # ThoiDiemXuLy in UTC (the same instant is one key whatever offset it was sent with)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    status: int = Field(primary_key=True)  # TrangThai
    # ProgressStep.to_json(): the instant, the status and the details the portal defines (NguoiXuLy, ...)
    step: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Steps of one instant are read in the order they came: by request, then by position in the request.
    accepted_at: datetime = Field(default_factory=utcnow,
                                  sa_column=Column(DateTime(timezone=True), nullable=False))
    position: int = 0
