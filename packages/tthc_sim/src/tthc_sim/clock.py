"""Placing instants on an agency's working calendar (`tthc_core.calendar`): desk actions happen in office time.

Every instant the simulator writes is a whole minute in +07:00, as one-stop software records them.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from tthc_contracts import VN_TZ
from tthc_core.calendar import WorkingCalendar

MINUTE = timedelta(minutes=1)
_US_PER_MINUTE = 60_000_000


def at(day: date, minutes: int) -> datetime:
    return datetime.combine(day, time(0), tzinfo=VN_TZ) + timedelta(minutes=minutes)


def floor_minute(t: datetime) -> datetime:
    t = t.astimezone(VN_TZ)
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: datetime) -> datetime:
    f = floor_minute(t)
    return f if f == t else f + MINUTE


def office_point(cal: WorkingCalendar, a: datetime, b: datetime, rng: random.Random,
                 lo: float = 0.0, hi: float = 1.0) -> datetime:
    """A whole-minute office instant at a random share in [lo, hi] of the office time from `a` to `b`.

    `a` itself (moved to the next opening) when there is no office time in between.
    """
    start = cal.effective_start(ceil_minute(a))
    total = cal.between(start, b)
    if total <= _US_PER_MINUTE:
        return start
    share = rng.uniform(lo, hi)
    return floor_minute(cal.add(start, int(total * share))) if share > 0 else start


def office_after(cal: WorkingCalendar, a: datetime, office_minutes: float) -> datetime:
    """The instant `office_minutes` of office time after `a` (at least one minute later)."""
    return ceil_minute(cal.add(cal.effective_start(ceil_minute(a) + MINUTE), int(max(office_minutes, 0) * _US_PER_MINUTE)))


def desk_point_days_later(cal: WorkingCalendar, a: datetime, days: int, rng: random.Random) -> datetime:
    """An office instant on the first working day at least `days` calendar days after `a`.

    How long an applicant takes to bring documents or pay fees is counted in days of their life, not
    in office time; the desk then records it during office hours.
    """
    day = cal.next_working_day(a.astimezone(VN_TZ).date() + timedelta(days=max(days, 0)))
    opening, closing = cal.opening(day), cal.closing(day)
    t = office_point(cal, opening, closing, rng, 0.0, 0.95)
    return t if t > a else office_after(cal, a, rng.randint(10, 90))


def arrival_minute(cal: WorkingCalendar, rng: random.Random) -> int:
    """Minute of the day an applicant is served: a morning peak and a smaller afternoon one."""
    intervals = cal.intervals
    weights = [0.62] + [0.38 / max(len(intervals) - 1, 1)] * (len(intervals) - 1)
    s, e = rng.choices(intervals, weights=weights)[0]
    # Few people in the first minutes and the last quarter hour; most around the middle.
    m = int(rng.triangular(s + 5, max(e - 10, s + 6), s + (e - s) * 0.4))
    return min(max(m, s), e - 1)
