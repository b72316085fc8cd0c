"""What a service keeps instead of every dossier's state (tthc_core.indices): an open dossier's thresholds
give `open_facts` at every later cut; counts added up give back the Tally of `received_facts` and
`closed_facts`; a period splits into whole months and the days around them."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tthc_contracts import VN_TZ, parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar
from tthc_core.deadlines import Dossier, fold
from tthc_core.indices import (
    Period,
    Tally,
    closed_facts,
    current_periods,
    facts_basis,
    open_facts,
    open_thresholds,
    received_facts,
    split_by_months,
    tally_of_counts,
)

from tests.support.random_dossiers import CALENDAR, boundaries, dossier_log

BOOK = CalendarBook(parse_calendar(CALENDAR))
ONE_US = timedelta(microseconds=1)


def folded(log: list[dict]) -> Dossier:
    state, _ = fold([parse_dossier_event(e) for e in log], BOOK)
    assert state is not None
    return state


def facts_by_thresholds(d: Dossier, cut: datetime) -> Counter[str]:
    t = open_thresholds(d)
    overdue = t.overdue_after is not None and cut > t.overdue_after
    on_time = t.i766_late_after is None or cut <= t.i766_late_after
    return Counter({"handled": 1, "open_overdue": int(overdue), "open_within": int(not overdue),
                    "i766_on_time": int(on_time)})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=dossier_log(closing=False), data=st.data())
def test_an_open_dossiers_thresholds_give_its_open_facts_at_every_later_cut(log, data):
    d = folded(log)
    last = d.last_event[0]
    later = [t for t in boundaries(d) if t > last]
    cuts = [last + ONE_US, *data.draw(st.lists(st.sampled_from(later), max_size=6) if later else st.just([])),
            last + timedelta(minutes=data.draw(st.integers(1, 60 * 24 * 90)))]
    for cut in cuts:
        assert +facts_by_thresholds(d, cut) == +open_facts(d, cut).counts, cut


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=st.lists(dossier_log(), min_size=1, max_size=8))
def test_counts_added_up_give_back_the_tally_of_the_facts(logs):
    """The procedure sets (online uptake) follow from the counts: nothing but numbers needs keeping."""
    states = [folded(log) for log in logs]
    by_procedure: dict[str, Tally] = {}
    expected = Tally()
    for d in states:
        facts = received_facts(d, BOOK) + (closed_facts(d, BOOK) if d.closed_at else Tally())
        by_procedure.setdefault(d.procedure_code, Tally())
        by_procedure[d.procedure_code] += facts
        expected += facts
    got = Tally()
    for procedure, tally in by_procedure.items():
        got += tally_of_counts(tally.counts, tally.processing_us, procedure, BOOK)
    assert (+got.counts, +got.processing_us) == (+expected.counts, +expected.processing_us)
    assert got.procedures_offered_online == expected.procedures_offered_online
    assert got.procedures_with_online == expected.procedures_with_online


def test_a_period_splits_into_whole_months_and_the_days_around_them():
    def at(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=VN_TZ)

    year = split_by_months(Period(date(2026, 1, 1), date(2026, 12, 31)))
    assert (year.first_month, year.last_month, year.partial) == (date(2026, 1, 1), date(2026, 12, 1), ())
    mid = split_by_months(Period(date(2026, 3, 15), date(2026, 6, 10)))
    assert (mid.first_month, mid.last_month) == (date(2026, 4, 1), date(2026, 5, 1))
    assert mid.partial == ((at(date(2026, 3, 15)), at(date(2026, 4, 1))),
                           (at(date(2026, 6, 1)), at(date(2026, 6, 11))))
    week = split_by_months(Period(date(2026, 2, 23), date(2026, 3, 1)))
    assert (week.first_month, week.partial) == (None, ((at(date(2026, 2, 23)), at(date(2026, 3, 2))),))
    february = split_by_months(Period(date(2028, 2, 1), date(2028, 2, 29)))
    assert (february.first_month, february.last_month, february.partial) == (date(2028, 2, 1),) * 2 + ((),)


def test_the_current_periods_are_local_month_quarter_and_year():
    # 31/03 17:30 UTC is already 01/04 in Vietnam: the second quarter
    periods = current_periods(datetime(2026, 3, 31, 17, 30, tzinfo=timezone.utc))
    assert periods["month"] == Period(date(2026, 4, 1), date(2026, 4, 30))
    assert periods["quarter"] == Period(date(2026, 4, 1), date(2026, 6, 30))
    assert periods["year"] == Period(date(2026, 1, 1), date(2026, 12, 31))


def test_the_facts_basis_changes_with_what_the_counts_depend_on_and_not_with_the_online_marks():
    base = facts_basis(BOOK)
    assert facts_basis(CalendarBook(parse_calendar(CALENDAR))) == base
    online = CALENDAR.replace("online: full", "online: partial")
    assert facts_basis(CalendarBook(parse_calendar(online))) == base
    tolerance = CALENDAR.replace("appointment_tolerance_hours: 4", "appointment_tolerance_hours: 8")
    assert facts_basis(CalendarBook(parse_calendar(tolerance))) != base
    assert facts_basis(CalendarBook(parse_calendar(CALENDAR + "extra_days_off: [2026-03-02]\n"))) != base
