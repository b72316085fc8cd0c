"""Office-time arithmetic on the Vietnamese working calendar (`spec/deadlines.md` §1-3, §7).

Pure and synchronous: no I/O, no wall clock. All instants are aware datetimes; arithmetic is done
on Vietnam local time (+07:00, no daylight saving), and results are returned in +07:00.

Durations are handled as integer microseconds so that `add(s, between(s, x)) == x` holds exactly.
"""

from __future__ import annotations

import calendar as _stdcal
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays

from tthc_contracts.timefmt import VN_TZ

from .calendar_config import DEFAULT_OFFICE_HOURS, CalendarConfig

_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000
_ONE_DAY = timedelta(days=1)
# A dossier's clock cannot run for more than this many days without reaching a working day; it
# guards the walks below against a calendar file that declares every day off.
_MAX_WALK_DAYS = 3660


def hours_to_us(hours: float) -> int:
    return round(hours * _US_PER_HOUR)


def us_to_hours(us: int) -> float:
    return us / _US_PER_HOUR


@lru_cache(maxsize=None)
def _vn_holidays() -> holidays.HolidayBase:
    # One instance for the process: holidays.VN expands years lazily as they are looked up.
    return holidays.country_holidays("VN")


def vn_is_working_day(day: date) -> bool:
    """holidays.VN's own answer: Mon-Fri minus holidays and days off, plus make-up Saturdays."""
    return _vn_holidays().is_working_day(day)


@lru_cache(maxsize=4096)
def _working_ordinals(year: int, days_off: frozenset[date], working: frozenset[date]) -> tuple[int, ...]:
    """The working days of one year as sorted ordinals: whole days are then skipped by bisection."""
    day, out = date(year, 1, 1), []
    while day.year == year:
        # The deployment's calendar file is consulted first: it carries announcements made after
        # the holidays package was released, and local closures.
        if day in working or (day not in days_off and vn_is_working_day(day)):
            out.append(day.toordinal())
        day += _ONE_DAY
    return tuple(out)


@dataclass(frozen=True)
class WorkingCalendar:
    """One agency's calendar: working days, office intervals, optional receipt cut-off."""

    intervals: tuple[tuple[int, int], ...] = DEFAULT_OFFICE_HOURS  # minutes after midnight, half-open
    receipt_cutoff: int | None = None  # minutes after midnight
    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    # Intervals in microseconds after midnight, derived once.
    _us: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        us = tuple((s * _US_PER_MINUTE, e * _US_PER_MINUTE) for s, e in self.intervals)
        object.__setattr__(self, "_us", us)
        object.__setattr__(self, "_day_len", sum(e - s for s, e in us))
        # Per-year working days of this calendar, filled as years are looked up (hot path).
        object.__setattr__(self, "_year_sets", {})

    # -- days -----------------------------------------------------------------------------------
    @property
    def day_length_us(self) -> int:
        return self._day_len  # type: ignore[attr-defined]

    def is_working_day(self, day: date) -> bool:
        year_set = self._year_sets.get(day.year)  # type: ignore[attr-defined]
        if year_set is None:
            year_set = frozenset(self._year(day.year))
            self._year_sets[day.year] = year_set  # type: ignore[attr-defined]
        return day.toordinal() in year_set

    def _year(self, year: int) -> tuple[int, ...]:
        return _working_ordinals(year, self.extra_days_off, self.extra_working_days)

    def nth_working_day_after(self, day: date, n: int) -> date:
        """The n-th working day strictly after `day` (n >= 1)."""
        ordinal, year = day.toordinal(), day.year
        for _ in range(_MAX_WALK_DAYS // 365 + 2):
            days = self._year(year)
            start = bisect_right(days, ordinal)
            if n <= len(days) - start:
                return date.fromordinal(days[start + n - 1])
            n -= len(days) - start
            year += 1
        raise ValueError("office-time walk did not end: is every day off in the calendar?")

    def working_days_strictly_between(self, a: date, b: date) -> int:
        if b.toordinal() - a.toordinal() <= 1:
            return 0
        count = 0
        for year in range(a.year, b.year + 1):
            days = self._year(year)
            lo = bisect_right(days, a.toordinal()) if year == a.year else 0
            hi = bisect_left(days, b.toordinal()) if year == b.year else len(days)
            count += hi - lo
        return count

    def next_working_day(self, day: date) -> date:
        """The first working day on or after `day`."""
        for _ in range(_MAX_WALK_DAYS):
            if self.is_working_day(day):
                return day
            day += _ONE_DAY
        raise ValueError(f"no working day within {_MAX_WALK_DAYS} days of {day}")

    def _prev_working_day(self, day: date) -> date:
        for _ in range(_MAX_WALK_DAYS):
            if self.is_working_day(day):
                return day
            day -= _ONE_DAY
        raise ValueError(f"no working day within {_MAX_WALK_DAYS} days before {day}")

    # -- helpers between instants and (day, microseconds after midnight) --------------------------
    @staticmethod
    def _split(t: datetime) -> tuple[date, int]:
        local = t if t.tzinfo is VN_TZ else t.astimezone(VN_TZ)
        tod = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
        return local.date(), tod

    @staticmethod
    def _join(day: date, us: int) -> datetime:
        seconds, micro = divmod(us, 1_000_000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        if hour == 24:  # an interval ending at midnight
            return datetime(day.year, day.month, day.day, tzinfo=VN_TZ) + _ONE_DAY
        return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=VN_TZ)

    def opening(self, day: date) -> datetime:
        return self._join(day, self._us[0][0])

    def closing(self, day: date) -> datetime:
        """End of office hours (the last interval's end) on `day`."""
        return self._join(day, self._us[-1][1])

    def is_office_instant(self, t: datetime) -> bool:
        day, tod = self._split(t)
        return self.is_working_day(day) and any(s <= tod < e for s, e in self._us)

    # -- §2 start of the clock ------------------------------------------------------------------
    def effective_start(self, t: datetime, *, apply_cutoff: bool = False) -> datetime:
        """`t` itself when inside office time, else the next opening of an office interval.

        With `apply_cutoff` (a receipt or a supplementation restart, never a resume), a working
        day's instant at or after the receipt cut-off moves to the next working day's opening.
        """
        day, tod = self._split(t)
        if self.is_working_day(day):
            if apply_cutoff and self.receipt_cutoff is not None and tod >= self.receipt_cutoff * _US_PER_MINUTE:
                return self.opening(self.next_working_day(day + _ONE_DAY))
            for s, e in self._us:
                if tod < s:
                    return self._join(day, s)
                if tod < e:
                    return t.astimezone(VN_TZ)
        return self.opening(self.next_working_day(day + _ONE_DAY))

    # -- §3 adding office time ------------------------------------------------------------------
    def add(self, start: datetime, amount_us: int) -> datetime:
        """Walk `amount_us` of office time forward from `start`.

        A sum that lands exactly on an interval's end is that end (17:00), never the next
        opening: `remaining <= available` below is what makes it so.
        """
        if amount_us <= 0:
            return start.astimezone(VN_TZ)
        day, tod = self._split(start)
        remaining = amount_us
        if self.is_working_day(day):
            found, remaining = self._walk_day(day, tod, remaining)
            if found is not None:
                return found
        # Whole working days are skipped by bisection; the last (partial or full) day is walked.
        whole, rest = divmod(remaining, self.day_length_us)
        if rest == 0:
            whole, rest = whole - 1, self.day_length_us
        found, _ = self._walk_day(self.nth_working_day_after(day, whole + 1), 0, rest)
        assert found is not None
        return found

    def _walk_day(self, day: date, tod: int, remaining: int) -> tuple[datetime | None, int]:
        for s, e in self._us:
            if tod >= e:
                continue
            begin = max(s, tod)
            available = e - begin
            if remaining <= available:
                return self._join(day, begin + remaining), 0
            remaining -= available
        return None, remaining

    def add_working_days(self, start: datetime, days: float) -> datetime:
        return self.add(start, round(days * self.day_length_us))

    # -- office time between two instants -------------------------------------------------------
    def between(self, a: datetime, b: datetime) -> int:
        """Office time in [a, b), in microseconds; 0 when b <= a."""
        if b <= a:
            return 0
        day_a, tod_a = self._split(a)
        day_b, tod_b = self._split(b)
        if day_a == day_b:
            return self._office_within(day_a, tod_a, tod_b)
        return (
            self._office_within(day_a, tod_a, None)
            + self.working_days_strictly_between(day_a, day_b) * self.day_length_us
            + self._office_within(day_b, 0, tod_b)
        )

    def _office_within(self, day: date, lo_tod: int, hi_tod: int | None) -> int:
        if not self.is_working_day(day):
            return 0
        total = 0
        for s, e in self._us:
            lo, hi = max(s, lo_tod), e if hi_tod is None else min(e, hi_tod)
            if hi > lo:
                total += hi - lo
        return total

    # -- §7 subtracting office time (the at-risk instant) ---------------------------------------
    def subtract(self, t: datetime, amount_us: int) -> datetime:
        """The instant from which `amount_us` of office time remains until `t`.

        On a boundary between office intervals it is the end of the earlier one (due Thursday
        17:00 minus one day is Wednesday 17:00, not Thursday 08:00).
        """
        day, tod = self._split(t)
        remaining = amount_us
        landed_on_opening = remaining <= 0
        for _ in range(_MAX_WALK_DAYS * 4):
            if self.is_working_day(day):
                for s, e in reversed(self._us):
                    if s >= tod:
                        continue
                    if landed_on_opening:
                        return self._join(day, e if e <= tod else tod)
                    end = min(e, tod)
                    available = end - s
                    if remaining < available:
                        return self._join(day, end - remaining)
                    remaining -= available
                    if remaining == 0:
                        landed_on_opening = True
            day -= _ONE_DAY
            tod = 24 * 60 * _US_PER_MINUTE
        raise ValueError("office-time walk did not end: is every day off in the calendar?")

    # -- §3 calendar units ----------------------------------------------------------------------
    def end_of_office_on_or_after(self, day: date) -> datetime:
        """Civil Code Đ147-148: a last day on a rest day moves to the next working day."""
        return self.closing(self.next_working_day(day))


def add_months(day: date, months: int) -> date:
    """`day` + `months`, the day clamped to the target month's last day (31/01 + 1 → 28/02)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _stdcal.monthrange(year, month)[1]))


class CalendarBook:
    """The deployment's calendars: one per agency, built from the calendar file (cached)."""

    def __init__(self, config: CalendarConfig | None = None):
        self.config = config or CalendarConfig()
        self._by_agency: dict[str, WorkingCalendar] = {}

    def for_agency(self, agency_code: str) -> WorkingCalendar:
        cal = self._by_agency.get(agency_code)
        if cal is None:
            c = self.config
            override = c.agencies.get(agency_code)
            intervals = override.office_hours if override and override.office_hours else c.office_hours
            cutoff = c.receipt_cutoff
            if override is not None and override.receipt_cutoff_set:
                cutoff = override.receipt_cutoff
            cal = WorkingCalendar(
                intervals=intervals,
                receipt_cutoff=cutoff,
                extra_days_off=c.extra_days_off,
                extra_working_days=c.extra_working_days,
            )
            self._by_agency[agency_code] = cal
        return cal

    def supplement_mode(self, procedure_code: str) -> str | None:
        return self.config.procedure_supplement_modes.get(procedure_code)

    def online_level(self, procedure_code: str) -> str | None:
        """`partial` or `full` when the calendar file marks the procedure as offered online, else None."""
        return self.config.procedure_online.get(procedure_code)

    @property
    def appointment_tolerance_hours(self) -> float:
        """deadlines.md §9: the office hours a printed appointment may differ before it is flagged."""
        return self.config.appointment_tolerance_hours
