"""Reads of the deadline service (HTTP, gauges, the sweep's probes). None of them writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pydantic_core
from sqlalchemy import func, select
from sqlmodel import Session

from tthc_core.deadlines import Dossier

from .models import TICK_ROW, DossierEventRow, DossierRow, StateCountRow, WatermarkRow


def decode_state(text: str) -> Dossier:
    """A stored `deadline_dossiers.state_json` (pydantic_core's JSON codec: about twice json's speed)."""
    return Dossier.from_json(pydantic_core.from_json(text))


def read_watermark(session: Session) -> datetime | None:
    """The event time the service has reached: the latest of its partitions' rows and its latest tick."""
    return session.scalar(select(func.max(WatermarkRow.at)))


@dataclass(frozen=True)
class EventTimes:
    """Where time stands for the dossiers of each Kafka partition of the dossier events.

    Each partition's events are read in the order they were posted, so a partition's time (its latest event,
    or the latest tick when that is later) is never ahead of an event still to come on it. Another partition
    may be read further ahead: its time does not make this partition's dossiers at risk or overdue before
    their own later events are read (it would draft an apology that event then cancels). The wall-clock tick
    moves every partition. The service's time (`read_watermark`) is the latest of all.
    """

    tick: datetime | None
    partitions: dict[int, datetime]

    @property
    def latest(self) -> datetime | None:
        return max((t for t in (self.tick, *self.partitions.values()) if t is not None), default=None)

    def of(self, partition: int | None) -> datetime | None:
        """The time of a partition's dossiers (None: a row from before partitions were kept: the latest)."""
        if partition is None:
            return self.latest
        own = self.partitions.get(partition)
        if own is None or (self.tick is not None and self.tick > own):
            return self.tick if self.tick is not None else own
        return own


def read_event_times(session: Session) -> EventTimes:
    tick, partitions = None, {}
    for name, at in session.execute(select(WatermarkRow.name, WatermarkRow.at)):
        if name == TICK_ROW:
            tick = at
        elif name.startswith("p") and name[1:].isdigit():
            partitions[int(name[1:])] = at
    return EventTimes(tick, partitions)


def read_tick(session: Session) -> datetime | None:
    """The latest wall-clock tick seen (None before the first, and always in a replay-like deployment)."""
    return session.scalar(select(WatermarkRow.at).where(WatermarkRow.name == TICK_ROW))


def any_moment_due(session: Session, times: EventTimes, partitions: set[int]) -> bool:
    """Index probes: is there a dossier of these partitions whose next moment its partition's time reached?"""
    for partition in sorted(partitions):
        now = times.of(partition)
        if now is not None and session.scalar(
            select(DossierRow.dossier_id).where(DossierRow.event_partition == partition,
                                                DossierRow.next_moment_at <= now).limit(1)  # type: ignore[operator]
        ) is not None:
            return True
    return False


@dataclass
class DossierLookup:
    state: Dossier | None
    held_events: int
    watermark: datetime | None


def get_dossier(session: Session, dossier_id: str) -> DossierLookup:
    text = session.scalar(select(DossierRow.state_json).where(DossierRow.dossier_id == dossier_id))
    watermark = read_watermark(session)
    if text is not None:
        return DossierLookup(decode_state(text), 0, watermark)
    held = session.scalar(
        select(func.count()).select_from(DossierEventRow).where(DossierEventRow.dossier_id == dossier_id)
    ) or 0
    return DossierLookup(None, held, watermark)


def list_dossiers(session: Session, *, agency: str | None, state: str | None, offset: int,
                  limit: int) -> tuple[list[Dossier], int, datetime | None]:
    conditions = []
    if agency:
        conditions.append(DossierRow.handling_agency == agency)
    if state:
        conditions.append(DossierRow.state == state)
    total = session.scalar(select(func.count()).select_from(DossierRow).where(*conditions)) or 0
    rows = session.scalars(
        select(DossierRow.state_json).where(*conditions).order_by(DossierRow.dossier_id).offset(offset).limit(limit)
    )
    return [decode_state(text) for text in rows], total, read_watermark(session)


def count_by_state(session: Session) -> dict[str, int]:
    """How many dossiers are in each state (`deadline_state_counts`, kept by the writers, summed over their
    shards): a few rows, whatever the number of dossiers."""
    rows = session.execute(select(StateCountRow.state, func.sum(StateCountRow.dossiers))
                           .group_by(StateCountRow.state))
    return {state: int(n) for state, n in rows if n}
