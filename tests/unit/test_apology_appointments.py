"""The new appointment an officer may promise (tthc_apology.appointments): after the issuing instant and the
missed due date, inside the agency's office time; a refusal proposes the nearest instant that is."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tthc_apology.appointments import is_office_moment, nearest_valid, refusal
from tthc_contracts import VN_TZ
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar

CAL = CalendarBook().for_agency("000.00.12.H10")  # 08:00-12:00, 13:00-17:00
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=VN_TZ)  # Monday
MISSED = datetime(2026, 3, 2, 17, 0, tzinfo=VN_TZ)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=VN_TZ)


@pytest.mark.parametrize("moment, inside", [
    (at(3, 8, 0), True), (at(3, 12, 0), True), (at(3, 12, 1), False), (at(3, 12, 59), False),
    (at(3, 13, 0), True), (at(3, 17, 0), True), (at(3, 17, 1), False), (at(3, 7, 59), False),
    (at(7, 10, 0), False),  # Saturday
    (at(3, 8, 0) - timedelta(seconds=1), False),
])
def test_office_moments_include_the_end_of_each_interval(moment: datetime, inside: bool) -> None:
    assert is_office_moment(CAL, moment) is inside


@pytest.mark.parametrize("wanted, proposed", [
    (at(3, 12, 20), at(3, 12, 0)),  # closer to the end of the morning
    (at(3, 12, 40), at(3, 13, 0)),  # closer to the afternoon's opening
    (at(3, 12, 30), at(3, 12, 0)),  # equally close: the earlier
    (at(3, 18, 30), at(3, 17, 0)),
    (at(4, 7, 0), at(4, 8, 0)),
    (at(7, 11, 0), at(6, 17, 0)),  # Saturday morning: Friday's close is nearer than Monday's opening
    (at(8, 20, 0), at(9, 8, 0)),  # Sunday evening: Monday's opening
    (at(3, 12, 20) + timedelta(seconds=30), at(3, 12, 0)),  # to the minute
    (at(2, 8, 0), at(3, 8, 0)),  # before the missed date: the first office moment after it
    (at(1, 10, 0), at(3, 8, 0)),
])
def test_the_nearest_valid_instant(wanted: datetime, proposed: datetime) -> None:
    assert nearest_valid(CAL, wanted, after=max(NOW, MISSED)) == proposed


def test_after_now_the_nearest_is_the_next_minute_in_office_time() -> None:
    assert nearest_valid(CAL, at(1, 10), after=NOW) == at(2, 9, 31)
    assert nearest_valid(CAL, at(1, 10), after=at(2, 11, 59) + timedelta(seconds=59)) == at(2, 12, 0)
    assert nearest_valid(CAL, at(1, 10), after=at(2, 12, 0)) == at(2, 13, 0)


@pytest.mark.parametrize("wanted, says", [
    (at(2, 9, 0), "sau thời điểm ban hành phiếu (02/03/2026 09:30)"),
    (at(2, 16, 0), "sau thời hạn đã lỡ (02/03/2026 17:00)"),
    (at(7, 9, 0), "Thứ Bảy 07/03/2026 là ngày nghỉ"),
    (at(3, 12, 30), "(08:00–12:00, 13:00–17:00): 12:30 là ngoài giờ làm việc"),
])
def test_a_refusal_says_why_and_proposes_the_nearest_instant(wanted: datetime, says: str) -> None:
    refused = refusal(CAL, wanted, now=NOW, missed_due_at=MISSED)
    assert refused is not None and refused.proposed is not None
    assert says in refused.reason
    assert refused.reason.endswith(f"Thời điểm hợp lệ gần nhất: {refused.proposed:%d/%m/%Y %H:%M}.")
    assert refusal(CAL, refused.proposed, now=NOW, missed_due_at=MISSED) is None


@pytest.mark.parametrize("wanted", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                                    "2036-03-10T10:00:00+07:00"])
def test_an_appointment_beyond_ten_years_or_beyond_the_calendar_is_refused_without_a_crash(wanted: str) -> None:
    refused = refusal(CAL, datetime.fromisoformat(wanted), now=NOW, missed_due_at=MISSED)
    assert refused is not None
    assert "quá xa" in refused.reason or "sau thời điểm ban hành" in refused.reason


def test_a_calendar_of_the_agency_counts_its_own_hours_and_days_off() -> None:
    cal = CalendarBook(parse_calendar('office_hours: ["07:30-11:30", "13:30-17:30"]\n'
                                      "extra_days_off: [2026-03-04]\n")).for_agency("000.00.12.H10")
    assert is_office_moment(cal, at(3, 17, 30)) and not is_office_moment(cal, at(3, 17, 31))
    refused = refusal(cal, at(4, 10), now=NOW, missed_due_at=MISSED)
    assert refused is not None and "Thứ Tư 04/03/2026 là ngày nghỉ" in refused.reason
    assert refused.proposed == at(3, 17, 30)  # Tuesday's close is nearer than Thursday's opening


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)))
def test_every_proposal_is_accepted_and_nothing_accepted_is_closer(wanted_naive: datetime) -> None:
    wanted = wanted_naive.replace(tzinfo=VN_TZ)
    refused = refusal(CAL, wanted, now=NOW, missed_due_at=MISSED)
    if refused is None:
        assert wanted > MISSED and is_office_moment(CAL, wanted)
        return
    proposed = refused.proposed
    assert proposed is not None and refusal(CAL, proposed, now=NOW, missed_due_at=MISSED) is None
    # No accepted whole minute lies strictly closer to what was asked.
    distance = abs(proposed - wanted)
    step = timedelta(minutes=1)
    probe = wanted.replace(second=0, microsecond=0)
    for offset in range(-3, 4):
        candidate = probe + offset * step
        if abs(candidate - wanted) < distance:
            assert refusal(CAL, candidate, now=NOW, missed_due_at=MISSED) is not None
