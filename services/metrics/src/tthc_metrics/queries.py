"""Reads for the HTTP report and the gauges: `fn(session, ...) -> data`. Never write.

The figures of a period stand at its cut (indices.md): P1 24:00, or the present when that is earlier.
The present is an explicit `until` when the caller gives one (a report as of an instant, like `tthc
replay --until`), else the service's watermark (the latest event time seen, that instant included).

Every dossier's stored state is the fold of every event stored for it (units.py). So a dossier handled
in the period stands at the cut exactly as its stored state does when none of its events is at or after
the cut, or when it closed before the cut (the fold ignores what happens to a closed dossier): those are
read as they are. Only the others, still open at the cut and changed since (a report of a past cut), are
folded from their events before the cut. At the present cut that is none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlmodel import Session

from tthc_contracts import parse_dossier_event
from tthc_contracts.timefmt import format_ts
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, fold
from tthc_core.indices import GROUPINGS, Period, compute_indices

from .models import DossierRow, PartitionWatermark, StoredDossierEvent
from .periods import current_periods, present

DOSSIERS = DossierRow.__table__  # type: ignore[attr-defined]
EVENTS = StoredDossierEvent.__table__  # type: ignore[attr-defined]
WATERMARKS = PartitionWatermark.__table__  # type: ignore[attr-defined]

ROWS_PER_FETCH = 1000
GAUGE_GROUPINGS = ("agency", "field")


def read_watermark(session: Session) -> datetime | None:
    """The latest event time seen on any stream and partition (None before the first event)."""
    return session.execute(select(func.max(WATERMARKS.c.at))).scalar()


def _handled(p0: datetime, cut: datetime) -> Any:
    """indices.md: received before the cut and not closed before P0."""
    D = DOSSIERS.c
    return and_(D.received_at.is_not(None), D.received_at < cut,
                or_(D.closed_at.is_(None), D.closed_at >= p0))


def _changed_since(cut: datetime) -> Any:
    """Open at the cut, and an event at or after it is folded into the stored state."""
    D = DOSSIERS.c
    return and_(or_(D.closed_at.is_(None), D.closed_at >= cut), D.last_event_at >= cut)


def dossiers_at_cut(session: Session, book: CalendarBook, p0: datetime,
                    cut: datetime) -> tuple[list[Dossier], dict[str, datetime]]:
    """Every dossier handled in [p0, cut) as it stood at the cut, and the first apology.issued before it."""
    handled, changed = _handled(p0, cut), _changed_since(cut)
    dossiers = [Dossier.from_json(state) for state in session.execute(
        select(DOSSIERS.c.state).where(handled, not_(changed))
        .execution_options(yield_per=ROWS_PER_FETCH)).scalars()]
    logs = session.execute(
        select(EVENTS.c.dossier_id, EVENTS.c.payload)
        .join(DOSSIERS, DOSSIERS.c.dossier_id == EVENTS.c.dossier_id)
        .where(handled, changed, EVENTS.c.occurred_at < cut)
        .order_by(EVENTS.c.dossier_id).execution_options(yield_per=ROWS_PER_FETCH))
    for events in _by_dossier(logs):
        state, _ = fold(events, book, until=cut)
        if state is not None:
            dossiers.append(state)
    issued = dict(session.execute(
        select(DOSSIERS.c.dossier_id, DOSSIERS.c.first_apology_at)
        .where(handled, DOSSIERS.c.first_apology_at < cut)).all())
    # In replay's order: a mean of floats (avg_processing_days) summed in another order may round apart.
    dossiers.sort(key=lambda d: d.dossier_id)
    return dossiers, issued


def _by_dossier(rows: Iterable[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    current_id = None
    for dossier_id, payload in rows:
        if dossier_id != current_id and current:
            yield current
            current = []
        current_id = dossier_id
        current.append(parse_dossier_event(payload))
    if current:
        yield current


NAMED = {"agency": lambda d: (d.handling_agency.code, d.handling_agency.name),
         "field": lambda d: (d.field_code, d.field_name),
         "procedure": lambda d: (d.procedure_code, d.procedure_name)}


def group_names(dossiers: Iterable[Dossier], groupings: Iterable[str]) -> dict[str, dict[str, str]]:
    """grouping -> code -> the name the dossiers' events give it (agency, field, procedure; a channel is
    its own name). A code named differently by several dossiers takes the name of the latest received."""
    named = [g for g in groupings if g in NAMED]
    latest = sorted(dossiers, key=lambda d: (d.received_at, d.dossier_id))
    names: dict[str, dict[str, str]] = {g: {} for g in named}
    for d in latest:
        for g in named:
            code, name = NAMED[g](d)
            names[g][code] = name
    return {g: dict(sorted(names[g].items())) for g in named}


def indices_report(session: Session, book: CalendarBook, period: Period, until: datetime | None,
                   groupings: tuple[str, ...] = GROUPINGS) -> dict[str, Any]:
    """indices.json of the period, plus `cut` (the instant the figures stand at) and `names`."""
    now = until if until is not None else present(read_watermark(session))
    cut = period.cut(now)
    dossiers, issued = dossiers_at_cut(session, book, period.begins_at, cut)
    result = compute_indices(dossiers, period, cut, book, issued, groupings)
    result["cut"] = format_ts(cut)
    result["names"] = group_names(dossiers, groupings)
    return result


def current_figures(session: Session,
                    book: CalendarBook) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    """period name -> indices by agency and by field at the present instant, and the watermark.

    The three periods contain the present, so they share its cut, and the year's handled dossiers
    include the quarter's and the month's: one read serves the three.
    """
    watermark = read_watermark(session)
    if watermark is None:
        return {}, None
    now = present(watermark)
    periods = current_periods(watermark)
    year = periods["year"]
    cut = year.cut(now)
    dossiers, issued = dossiers_at_cut(session, book, year.begins_at, cut)
    return {name: compute_indices(dossiers, period, cut, book, issued, GAUGE_GROUPINGS)
            for name, period in periods.items()}, watermark
