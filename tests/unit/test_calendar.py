"""The working calendar and office-time arithmetic (deadlines.md §1-3, §7)."""

from datetime import date, datetime, timedelta

import holidays
import lunar_vn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tthc_contracts import VN_TZ
from tthc_core.calendar import CalendarBook, WorkingCalendar, add_months, hours_to_us
from tthc_core.calendar_config import parse_calendar

CAL = CalendarBook().for_agency("000.00.12.H10")
DAY = CAL.day_length_us


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN_TZ)


@pytest.mark.parametrize(
    "received, expected",
    [
        ("2026-03-06T18:30", "2026-03-09T08:00"),  # Fri evening -> Mon opening
        ("2026-03-04T12:00", "2026-03-04T13:00"),  # lunch break: 12:00 is not office time
        ("2026-03-04T07:10", "2026-03-04T08:00"),
        ("2026-03-04T17:00", "2026-03-05T08:00"),
        ("2026-03-04T09:15", "2026-03-04T09:15"),
        ("2026-11-24T09:00", "2026-11-25T08:00"),  # Ngày Văn hóa Việt Nam, a holiday from 2026
    ],
)
def test_effective_start(received, expected):
    assert CAL.effective_start(at(received)) == at(expected)


@pytest.mark.parametrize(
    "received, amount, expected",
    [
        ("2026-03-02T09:00", 3 * DAY, "2026-03-05T09:00"),  # Mon 09:00 + 3 working days -> Thu 09:00
        ("2026-03-06T18:30", 3 * DAY, "2026-03-11T17:00"),  # lands on an interval end: 17:00, not 08:00
        ("2026-03-02T12:30", hours_to_us(4), "2026-03-02T17:00"),
        ("2026-02-13T10:00", 5 * DAY, "2026-02-27T10:00"),  # Tết 2026 skipped
        ("2025-04-25T09:30", DAY, "2025-04-26T09:30"),  # make-up Saturday 26/04/2025 is worked
        ("2026-03-02T08:00", DAY // 2, "2026-03-02T12:00"),  # half a day ends at the lunch break
    ],
)
def test_add_office_time(received, amount, expected):
    assert CAL.add(CAL.effective_start(at(received)), amount) == at(expected)


def test_subtract_lands_on_the_end_of_the_earlier_interval():
    assert CAL.subtract(at("2026-03-05T17:00"), DAY) == at("2026-03-04T17:00")
    assert CAL.subtract(at("2026-03-05T12:00"), hours_to_us(4)) == at("2026-03-04T17:00")
    assert CAL.subtract(at("2026-02-27T10:00"), DAY) == at("2026-02-26T10:00")


def test_make_up_saturdays_and_new_holidays_come_from_holidays_vn():
    assert CAL.is_working_day(date(2025, 4, 26))
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 11, 24))
    assert not CAL.is_working_day(date(2026, 9, 2))


@pytest.mark.parametrize("year", range(2020, 2041))
def test_tet_agrees_with_an_independent_vietnamese_lunar_calendar(year):
    tet = lunar_vn.convert_lunar_to_solar(1, 1, year)
    assert not CAL.is_working_day(tet), f"Tết {year} ({tet}) must be a day off"
    assert tet in holidays.country_holidays("VN", years=year)


def test_calendar_file_layers_days_over_holidays_vn():
    config = parse_calendar("extra_days_off: [2026-10-08]\nextra_working_days: [2026-10-10]\n")
    cal = CalendarBook(config).for_agency("x")
    assert not cal.is_working_day(date(2026, 10, 8))
    assert cal.is_working_day(date(2026, 10, 10))


def test_agency_office_hours_override():
    config = parse_calendar('agencies:\n  "A1": {office_hours: ["07:30-11:30", "13:30-17:30"]}\n')
    cal = CalendarBook(config).for_agency("A1")
    assert cal.effective_start(at("2026-03-04T07:45")) == at("2026-03-04T07:45")
    assert cal.add(at("2026-03-04T07:30"), DAY) == at("2026-03-04T17:30")


def test_months_clamp_to_the_last_day():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


# -- properties ----------------------------------------------------------------------------------
# Instants from 2024 to 2027 at minute resolution; office instants are filtered from them.
instants = st.integers(min_value=0, max_value=4 * 365 * 24 * 60).map(
    lambda m: datetime(2024, 1, 1, tzinfo=VN_TZ) + timedelta(minutes=m)
)
amounts = st.integers(min_value=1, max_value=40 * 8 * 60).map(lambda m: m * 60_000_000)


def _is_office_or_interval_end(cal: WorkingCalendar, t: datetime) -> bool:
    if cal.is_office_instant(t):
        return True
    tod = t.hour * 60 + t.minute
    return cal.is_working_day(t.date()) and any(e == tod for _, e in cal.intervals)


@settings(max_examples=300, deadline=None)
@given(instants, amounts)
def test_add_then_between_gives_the_amount_back(t, amount):
    start = CAL.effective_start(t)
    assert CAL.between(start, CAL.add(start, amount)) == amount


@settings(max_examples=300, deadline=None)
@given(instants, instants)
def test_add_of_between_returns_the_office_instant(a, b):
    s, x = sorted((CAL.effective_start(a), CAL.effective_start(b)))
    back = CAL.add(s, CAL.between(s, x))
    if x.hour * 60 + x.minute in {start for start, _ in CAL.intervals} and x > s:
        # An opening is reached as the end of the interval before it (the end-of-interval rule):
        # the same office instant, with no office time between the two.
        assert back < x and CAL.between(back, x) == 0 and _is_office_or_interval_end(CAL, back)
    else:
        assert back == x


@settings(max_examples=300, deadline=None)
@given(instants, amounts)
def test_add_never_lands_outside_office_time(t, amount):
    assert _is_office_or_interval_end(CAL, CAL.add(CAL.effective_start(t), amount))


@settings(max_examples=200, deadline=None)
@given(instants, amounts, amounts)
def test_add_is_monotonic(t, a, b):
    start = CAL.effective_start(t)
    lo, hi = sorted((a, b))
    assert CAL.add(start, lo) <= CAL.add(start, hi)


@settings(max_examples=300, deadline=None)
@given(instants, amounts)
def test_subtract_leaves_exactly_the_amount_before_the_instant(t, amount):
    due = CAL.add(CAL.effective_start(t), amount + DAY)
    at_risk = CAL.subtract(due, amount)
    assert CAL.between(at_risk, due) == amount
    assert _is_office_or_interval_end(CAL, at_risk)
