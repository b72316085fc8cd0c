"""The appointment audit (deadlines.md §9) and the online figures (indices.md `appointment_*`, `online_*`)."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support.events import at, event, parsed, received
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar
from tthc_core.deadlines import Dossier, appointment_verdict, fold
from tthc_core.indices import FIGURES, Period, compute_indices

BOOK = CalendarBook()


def state(*events, book=BOOK, until=None) -> Dossier:
    st, _ = fold(parsed(*events), book, until)
    assert st is not None
    return st


# Slips as one-stop software prints them, against the legal due date on the national calendar
# (office hours 08:00-12:00, 13:00-17:00):
SLIPS = {
    # Mon 02/03/2026 09:00 + 3 working days: due Thu 05/03 09:00. Printed at the end of that day:
    # 09:00-12:00 + 13:00-17:00 = 7 office hours later.
    "rounded-to-17h": received("R", "2026-03-02T09:00", 3, appointment_at="2026-03-05T17:00"),
    # Fri 21/08/2026 14:00 + 1 working day: Sat 22/08 is a make-up working day, due Sat 22/08 14:00.
    # Software that does not know it prints Mon 24/08 14:00: Sat 14-17 (3 h) + Mon 08-12 (4 h) + 13-14 (1 h).
    "makeup-saturday": received("S", "2026-08-21T14:00", 1, appointment_at="2026-08-24T14:00"),
    # Mon 23/11/2026 09:00 + 2 working days: Tue 24/11 is a holiday (Ngày Văn hóa Việt Nam): Mon 09-17
    # (7 h) + Wed (8 h) + Thu 08-09 (1 h), due Thu 26/11 09:00. Software that does not know the holiday
    # prints Wed 25/11 09:00: Wed 09-17 (7 h) + Thu 08-09 (1 h) = 8 office hours earlier.
    "unknown-holiday": received("H", "2026-11-23T09:00", 2, appointment_at="2026-11-25T09:00"),
    # Mon 02/03/2026 10:15 + 5 working days: due Mon 09/03 10:15, printed so.
    "equal": received("E", "2026-03-02T10:15", 5, appointment_at="2026-03-09T10:15"),
    "no-slip": received("N", "2026-03-02T10:15", 5),
}
GAPS = {"rounded-to-17h": 7.0, "makeup-saturday": 8.0, "unknown-holiday": -8.0, "equal": 0.0, "no-slip": None}


@pytest.mark.parametrize("name", GAPS)
def test_the_gap_is_the_signed_office_time_from_the_legal_due_date(name):
    st = state(SLIPS[name])
    assert st.appointment_gap_hours == GAPS[name]
    row = st.row()
    assert row["appointment_gap_hours"] == GAPS[name]
    assert list(row)[-2:] == ["appointment_at", "appointment_gap_hours"]  # interfaces.md order


def test_seventeen_hundred_and_the_next_opening_are_the_same_promise():
    # Mon 02/03 13:00 + 4 working hours: due Mon 17:00; a slip for Tue 08:00 promises the same.
    st = state(
        received(when="2026-03-02T13:00", value=4, unit="working_hours", appointment_at="2026-03-03T08:00")
    )
    assert st.due_at_receipt == at("2026-03-02T17:00") and st.appointment_gap_hours == 0.0
    assert appointment_verdict(st, BOOK) == "matching"


def test_both_instants_are_taken_to_the_minute():
    # Received 09:00:40: due Thu 05/03 09:00:40; a slip for 09:00:05 is the same minute.
    ev = received(when="2026-03-02T09:00:40", value=3)
    ev["data"]["appointment_at"] = "2026-03-05T09:00:05+07:00"
    assert state(ev).appointment_gap_hours == 0.0
    ev["data"]["appointment_at"] = "2026-03-05T09:20:59+07:00"
    assert state(ev).appointment_gap_hours == 0.33  # 20 minutes, rounded to 2 decimals


def test_the_appointment_is_judged_on_the_dossiers_calendar():
    # The agency keeps 07:30-11:30, 13:30-17:30: due Thu 05/03 09:00, and a slip for the end of its day
    # (17:30) is 6.5 office hours later on its hours (the default hours would count 17:00 as 7).
    book = CalendarBook(
        parse_calendar('agencies:\n  "000.00.12.H10": {office_hours: ["07:30-11:30", "13:30-17:30"]}\n')
    )
    st = state(received(when="2026-03-02T09:00", value=3, appointment_at="2026-03-05T17:30"), book=book)
    assert st.due_at_receipt == at("2026-03-05T09:00")
    assert st.appointment_gap_hours == 6.5  # 09:00-11:30 (2.5 h) + 13:30-17:30 (4 h)


@pytest.mark.parametrize(
    "tolerance, verdicts",
    [
        (
            None,
            {
                "rounded-to-17h": "later",
                "makeup-saturday": "later",
                "unknown-holiday": "earlier",
                "equal": "matching",
                "no-slip": None,
            },
        ),
        # 7.5 office hours of tolerance: the 7-hour rounding passes, the make-up Saturday (8 h) and the
        # unknown holiday (-8 h) do not.
        (
            7.5,
            {
                "rounded-to-17h": "matching",
                "makeup-saturday": "later",
                "unknown-holiday": "earlier",
                "equal": "matching",
                "no-slip": None,
            },
        ),
        # A gap equal to the tolerance matches: later means beyond it.
        (
            8,
            {
                "rounded-to-17h": "matching",
                "makeup-saturday": "matching",
                "unknown-holiday": "matching",
                "equal": "matching",
                "no-slip": None,
            },
        ),
    ],
)
def test_the_verdict_follows_the_calendar_files_tolerance(tolerance, verdicts):
    book = CalendarBook(
        parse_calendar("" if tolerance is None else f"appointment_tolerance_hours: {tolerance}\n")
    )
    assert {name: appointment_verdict(state(ev, book=book), book) for name, ev in SLIPS.items()} == verdicts


def _indices(events, book=BOOK, start=date(2026, 1, 1), end=date(2026, 12, 31)):
    period = Period(start, end)
    folded = (fold(parsed(*evs), book, period.ends_at)[0] for evs in _by_dossier(events).values())
    dossiers = [d for d in folded if d is not None]  # None: received after the period
    return compute_indices(dossiers, period, period.ends_at, book)


def _by_dossier(events):
    out: dict[str, list] = {}
    for e in events:
        out.setdefault(e["dossier_id"], []).append(e)
    return out


def test_the_appointment_figures_on_a_log_of_slips():
    result = _indices(SLIPS.values())
    assert {k: result["total"][k] for k in FIGURES if k.startswith("appointment_")} == {
        "appointment_checked": 4,
        "appointment_later": 2,
        "appointment_earlier": 1,
        "appointment_later_rate": 0.5,
    }
    tolerant = CalendarBook(parse_calendar("appointment_tolerance_hours: 7.5\n"))
    total = _indices(SLIPS.values(), book=tolerant)["total"]
    assert (total["appointment_later"], total["appointment_earlier"], total["appointment_later_rate"]) == (
        1,
        1,
        0.25,
    )


def test_appointment_figures_count_the_dossiers_received_in_the_period():
    # March 2026 only: the August and November slips are not received in it; the no-slip dossier is
    # received but not checked. Resolved in March, a February receipt is handled but not received.
    february = received("F", "2026-02-23T09:00", 10, appointment_at="2026-03-20T17:00")
    resolved = event("dossier.resolved", "2026-03-02T10:00", {"result": "approved"}, dossier_id="F")
    result = _indices([*SLIPS.values(), february, resolved], start=date(2026, 3, 1), end=date(2026, 3, 31))
    total = result["total"]
    assert (total["received"], total["closed"]) == (3, 1)
    assert (total["appointment_checked"], total["appointment_later"], total["appointment_later_rate"]) == (
        2,
        1,
        0.5,
    )
    empty = _indices([SLIPS["no-slip"]], start=date(2026, 3, 1), end=date(2026, 3, 31))["total"]
    assert empty["appointment_checked"] == 0 and empty["appointment_later_rate"] is None  # never 0


ONLINE_CALENDAR = 'procedures:\n  "P1": {online: full}\n  "P2": {online: partial, supplement_mode: pause}\n'


def _procedure(code):
    return {"code": code, "name": f"Thủ tục {code}", "field_code": "F", "field_name": "Lĩnh vực"}


def test_the_online_figures():
    book = CalendarBook(parse_calendar(ONLINE_CALENDAR))
    agency_b = {"code": "B", "name": "UBND xã Hữu Lũng"}
    log = [
        received("1", "2026-03-02T09:00", procedure=_procedure("P1"), channel="online"),
        received("2", "2026-03-02T09:10", procedure=_procedure("P1"), channel="in_person"),
        received("3", "2026-03-02T09:20", procedure=_procedure("P2"), channel="postal"),
        received("4", "2026-03-02T09:30", procedure=_procedure("P3"), channel="online"),  # not marked online
        received("5", "2026-03-02T09:40", procedure=_procedure("P2"), channel="online", agency=agency_b),
        # Received before the period: handled in it, but neither received nor online in it.
        received("6", "2026-02-27T09:00", value=10, procedure=_procedure("P2"), channel="online"),
    ]
    result = _indices(log, book=book, start=date(2026, 3, 1), end=date(2026, 3, 31))
    online = (
        "received",
        "online_received",
        "online_rate",
        "procedures_offered_online",
        "procedures_with_online",
        "online_uptake_rate",
    )

    def pick(row):
        return tuple(row[k] for k in online)

    # Total: 5 received, 3 online; P1 and P2 are offered online and both had an online dossier.
    assert pick(result["total"]) == (5, 3, 0.6, 2, 2, 1.0)
    # Agency 000.00.12.H10: P1 (online dossier 1) and P2 (dossier 3 by post only): uptake 1 of 2.
    assert pick(result["by_agency"]["000.00.12.H10"]) == (4, 2, 0.5, 2, 1, 0.5)
    assert pick(result["by_agency"]["B"]) == (1, 1, 1.0, 1, 1, 1.0)
    # A procedure the calendar file does not mark is not counted among the offered: uptake undefined.
    assert pick(result["by_procedure"]["P3"]) == (1, 1, 1.0, 0, 0, None)
    assert pick(result["by_channel"]["online"]) == (3, 3, 1.0, 2, 2, 1.0)


def test_every_output_carries_every_figure():
    result = _indices(SLIPS.values())
    for grouping in ("by_agency", "by_field", "by_procedure", "by_channel"):
        for row in result[grouping].values():
            assert list(row) == list(FIGURES)
    assert list(result["total"]) == list(FIGURES)


def test_the_appointment_survives_the_stored_state_and_old_states_still_read():
    st = state(SLIPS["makeup-saturday"])
    again = Dossier.from_json(st.to_json())
    assert again.row() == st.row() and again.appointment_at == at("2026-08-24T14:00")
    old = st.to_json()
    del old["appointment_at"], old["appointment_gap_hours"]  # a state stored before the audit existed
    legacy = Dossier.from_json(old)
    assert legacy.appointment_at is None and legacy.row()["appointment_gap_hours"] is None
