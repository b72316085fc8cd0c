"""A day at the province's one-stop counters: who comes, for which procedure, and what becomes of it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tthc_contracts import VN_TZ, format_ts, parse_ts
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import compute_due

from . import people
from .catalogue import PROCEDURES, Catalogue, Procedure, Unit
from .clock import arrival_minute, at
from .story import Story, draw_fate

DEFAULT_SOURCE = "motcua-lang-son"
# The "present" of a generated day: nothing is written after this many days (later steps are left
# for the dossiers that are still open, as on a real day's data pulled some weeks later).
DEFAULT_HORIZON_DAYS = 56


@dataclass
class _Arrival:
    index: int
    procedure: Procedure
    receiving: Unit
    handling: Unit
    place: str
    channel: str
    minute: int
    dossier_id: str = ""


def _place(unit: Unit) -> str:
    """`UBND xã Hữu Lũng` -> `xã Hữu Lũng` (an applicant's address)."""
    return unit.name.removeprefix("UBND ")


def _draw_arrivals(rng: random.Random, day: date, n: int, cat: Catalogue, book: CalendarBook) -> list[_Arrival]:
    # A day's data comes from a handful of communes (bigger wards more often), and every department.
    communes = rng.sample(cat.communes, k=min(6, len(cat.communes)))
    districts = communes if cat.districts is cat.communes else rng.sample(cat.districts, k=min(3, len(cat.districts)))
    weights = [p.weight for p in PROCEDURES]
    arrivals: list[_Arrival] = []
    for i in range(n):
        proc = rng.choices(PROCEDURES, weights=weights)[0]
        if proc.owner == "commune":
            receiving = rng.choices(communes, weights=range(len(communes) + 1, 1, -1))[0]
        elif proc.owner == "district":
            receiving = rng.choice(districts)
        else:
            receiving = cat.unit(proc.owner)
        handling = cat.unit(proc.handled_by) if proc.handled_by else receiving
        place = _place(receiving) if proc.owner in ("commune", "district") else _place(rng.choice(cat.communes))
        r = rng.random()
        channel = "online" if r < proc.online_share else "postal" if r < proc.online_share + 0.04 else "in_person"
        minute = arrival_minute(book.for_agency(handling.code), rng)
        arrivals.append(_Arrival(i, proc, receiving, handling, place, channel, minute))
    arrivals.sort(key=lambda a: (a.minute, a.index))
    # MaHoSo: receiving agency, date, the agency's running number of the day.
    yymmdd = day.strftime("%y%m%d")
    counters: dict[str, int] = {}
    for a in arrivals:
        counters[a.receiving.code] = counters.get(a.receiving.code, 0) + 1
        a.dossier_id = f"{a.receiving.code}-{yymmdd}-{counters[a.receiving.code]:04d}"
    return arrivals


def _received_data(rng: random.Random, a: _Arrival, received_at: datetime, book: CalendarBook) -> dict[str, Any]:
    proc = a.procedure
    value, unit = proc.duration
    applicant = (people.organization if rng.random() < proc.organizations else people.citizen)(rng, a.place)
    data: dict[str, Any] = {
        "procedure": {
            "code": proc.code,
            "name": proc.name,
            "field_code": proc.field_code,
            "field_name": proc.field_name,
        },
        "receiving_agency": a.receiving.as_agency(),
        "handling_agency": a.handling.as_agency(),
        "channel": a.channel,
        "duration": {"value": value, "unit": unit},
        "applicant": applicant,
    }
    if rng.random() < 0.9:
        data["appointment_at"] = format_ts(_printed_appointment(rng, book, a, received_at))
    return data


def _printed_appointment(
    rng: random.Random, book: CalendarBook, a: _Arrival, received_at: datetime
) -> datetime:
    """NgayHenTra as the one-stop software printed it (kept and audited, never trusted, deadlines.md §9).

    Right on most slips; some desks round it to the end of the due day (later than the law allows by
    the rest of that day); an older release that does not know this year's days off prints it a
    working day early now and then.
    """
    value, unit = a.procedure.duration
    cal = book.for_agency(a.handling.code)
    due = compute_due(cal, received_at, cal.effective_start(received_at, apply_cutoff=True), value, unit)
    r = rng.random()
    if r < 0.05:
        return cal.subtract(due, cal.day_length_us)
    if r < 0.17:
        return cal.closing(due.astimezone(VN_TZ).date())
    return due


def generate_day(
    day: date,
    dossiers: int = 300,
    seed: int = 1,
    *,
    source: str = DEFAULT_SOURCE,
    book: CalendarBook | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    late_posts: float = 0.03,
    resends: float = 0.0,
) -> list[dict[str, Any]]:
    """The dossiers received on `day` with every event of their lives, as JSON-ready v1 event dicts.

    Deterministic for (`day`, `dossiers`, `seed`). The list is in arrival order: by event time, except
    `late_posts` (a share of the follow-up events, posted up to a few hours late by the one-stop
    software's sync) and `resends` (a share of events posted a second time, same `event_id`).
    """
    book = book or CalendarBook()
    rng = random.Random(f"tthc-sim|{day.isoformat()}|{seed}")
    cat = Catalogue(day)
    horizon = at(day + timedelta(days=horizon_days), 0)
    posted: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for a in _draw_arrivals(rng, day, dossiers, cat, book):
        life = random.Random(f"tthc-sim|{day.isoformat()}|{seed}|{a.index}")
        received_at = at(day, a.minute)
        story = Story(life, book, a.dossier_id, source, horizon)
        transfer_to = cat.unit(a.procedure.transfer_to).as_agency() if a.procedure.transfer_to else None
        story.tell(draw_fate(life, a.procedure, a.channel), _received_data(life, a, received_at, book), received_at,
                   a.procedure, transfer_to)
        for n, ev in enumerate(story.events):
            arrival = parse_ts(ev["occurred_at"])
            if ev["type"] not in ("dossier.received", "dossier.submitted") and life.random() < late_posts:
                arrival += timedelta(minutes=life.randint(5, 240))
            posted.append((arrival, a.index, n, ev))
            if life.random() < resends:
                posted.append((arrival + timedelta(minutes=life.randint(1, 30)), a.index, n, dict(ev)))
    posted.sort(key=lambda p: (p[0], p[1], p[2]))
    return [ev for *_, ev in posted]
