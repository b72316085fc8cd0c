"""The new appointment an officer promises in an issued letter (`new_due_at`), and what is wrong with one.

A letter must not promise a result in the past, nor before the appointment it apologises for, nor at an
hour the agency is closed: the new appointment lies after the issuing instant and after the missed due
date, inside the agency's office time on its working calendar. Office intervals are half-open for the
clock, but an appointment at an interval's end (17:00) is inside, as the core's due dates are. A refusal
says why in Vietnamese and proposes the nearest instant that would be accepted, to the minute.

Pure functions on the agency's `WorkingCalendar`; the wall clock comes in as `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tthc_contracts.timefmt import VN_TZ, to_vn
from tthc_core.calendar import WorkingCalendar

# events.md bounds timestamps in `data` to 10 years around their event: an appointment beyond that is a typo.
MAX_AHEAD = timedelta(days=3653)
_MINUTE = timedelta(minutes=1)
_LOOK_BACK_DAYS = 400
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


def vn_datetime(ts: datetime) -> str:
    """`13/03/2026 17:00`: how officers read an instant (Vietnam time, 24 h)."""
    return f"{to_vn(ts):%d/%m/%Y %H:%M}"


@dataclass(frozen=True)
class AppointmentRefused:
    reason: str  # Vietnamese, with the proposal
    proposed: datetime | None  # the nearest acceptable instant, when there is one


def _minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def office_hours_text(cal: WorkingCalendar) -> str:
    return ", ".join(f"{_minutes(s)}–{_minutes(e)}" for s, e in cal.intervals)


def _at(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=VN_TZ) + timedelta(minutes=minutes)


def is_office_moment(cal: WorkingCalendar, t: datetime) -> bool:
    """Inside an office interval of a working day, its end included."""
    if cal.is_office_instant(t):
        return True
    local = to_vn(t)
    for day in (local.date(), local.date() - timedelta(days=1)):  # an interval may end at 24:00
        if cal.is_working_day(day) and any(_at(day, e) == local for _, e in cal.intervals):
            return True
    return False


def _first_minute_after(t: datetime) -> datetime:
    return to_vn(t).replace(second=0, microsecond=0) + _MINUTE


def _ceil_minute(t: datetime) -> datetime:
    local = to_vn(t)
    return local if local.second == local.microsecond == 0 else _first_minute_after(local)


def _next_office_moment(cal: WorkingCalendar, t: datetime) -> datetime:
    """The first office moment at or after `t` (`t` on a whole minute)."""
    return t if is_office_moment(cal, t) else cal.effective_start(t)


def _previous_office_moment(cal: WorkingCalendar, t: datetime) -> datetime | None:
    """The last office moment at or before `t`: `t` itself, or the end of the interval before it."""
    if is_office_moment(cal, t):
        return to_vn(t)
    local = to_vn(t)
    day = local.date()
    minutes = local.hour * 60 + local.minute
    if cal.is_working_day(day):
        ends = [e for _, e in cal.intervals if e <= minutes]
        if ends:
            return _at(day, max(ends))
    for _ in range(_LOOK_BACK_DAYS):
        day -= timedelta(days=1)
        if cal.is_working_day(day):
            return cal.closing(day)
    return None


def nearest_valid(cal: WorkingCalendar, t: datetime, *, after: datetime) -> datetime:
    """The office moment later than `after` closest to `t` (the earlier of two equally close ones)."""
    earliest = _first_minute_after(after)
    candidates = [_next_office_moment(cal, max(_ceil_minute(t), earliest))]
    if t > after:
        before = _previous_office_moment(cal, t)
        if before is not None and before > after:
            candidates.append(before)
    return min(candidates, key=lambda c: (abs(c - t), c))


def refusal(cal: WorkingCalendar, new_due_at: datetime, *, now: datetime,
            missed_due_at: datetime) -> AppointmentRefused | None:
    """None when `new_due_at` may be promised; else why not, and the nearest instant that may."""
    try:
        to_vn(new_due_at)
        too_far = new_due_at - now > MAX_AHEAD
    except OverflowError:  # beyond what a datetime holds once in Vietnam time (year 9999 at -12:00)
        too_far = True
    if too_far:
        return AppointmentRefused(
            f"Ngày hẹn lại quá xa: không được quá 10 năm sau thời điểm ban hành ({vn_datetime(now)}).", None)
    after = max(now, missed_due_at)
    if new_due_at <= now:
        why = f"Ngày hẹn lại phải sau thời điểm ban hành phiếu ({vn_datetime(now)})."
    elif new_due_at <= missed_due_at:
        why = f"Ngày hẹn lại phải sau thời hạn đã lỡ ({vn_datetime(missed_due_at)})."
    elif not is_office_moment(cal, new_due_at):
        local = to_vn(new_due_at)
        if not cal.is_working_day(local.date()):
            why = (f"Ngày hẹn lại phải là ngày làm việc của cơ quan: {WEEKDAYS[local.weekday()]} "
                   f"{local:%d/%m/%Y} là ngày nghỉ.")
        else:
            why = (f"Ngày hẹn lại phải trong giờ làm việc của cơ quan ({office_hours_text(cal)}): "
                   f"{local:%H:%M} là ngoài giờ làm việc.")
    else:
        return None
    proposed = nearest_valid(cal, new_due_at, after=after)
    return AppointmentRefused(f"{why} Thời điểm hợp lệ gần nhất: {vn_datetime(proposed)}.", proposed)
