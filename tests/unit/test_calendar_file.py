"""The calendar file is refused with its line and reason when invalid (deadlines.md §1)."""

import pytest

from tthc_adapters.calendar_file import load_calendar
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import CalendarFileError, parse_calendar

GOOD = """\
office_hours: ["08:00-12:00", "13:00-17:00"]
receipt_cutoff: "15:00"
extra_days_off: [2026-10-08]
extra_working_days: [2026-10-10]
agencies:
  "000.00.12.H10": {office_hours: ["07:30-11:30", "13:30-17:30"]}
procedures:
  "1.004227": {supplement_mode: pause}
  "2.000567": {online: full}
  "1.001234": {online: partial, supplement_mode: restart}
appointment_tolerance_hours: 0.5
"""


def test_the_spec_example_file_is_read_whole():
    c = parse_calendar(GOOD)
    assert c.receipt_cutoff == 15 * 60
    assert c.agencies["000.00.12.H10"].office_hours == ((450, 690), (810, 1050))
    assert c.procedure_supplement_modes == {"1.004227": "pause", "1.001234": "restart"}
    assert c.procedure_online == {"2.000567": "full", "1.001234": "partial"}
    assert c.appointment_tolerance_hours == 0.5


def test_the_new_keys_have_their_defaults_and_accessors():
    assert parse_calendar("").appointment_tolerance_hours == 0
    book = CalendarBook(parse_calendar(GOOD))
    assert book.appointment_tolerance_hours == 0.5
    assert (book.online_level("2.000567"), book.online_level("1.001234"), book.online_level("1.004227")) == (
        "full", "partial", None)
    assert CalendarBook(parse_calendar("appointment_tolerance_hours: 2\n")).appointment_tolerance_hours == 2.0


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("office_hours: [\"08:00-12:00\", \"11:00-17:00\"]\n", 1, "overlaps"),
        ("office_hours:\n  - \"13:00-12:00\"\n", 2, "ends before it starts"),
        ("office_hours: [\"8h-12h\"]\n", 1, "not an interval"),
        ("holidays: []\n", 1, "unknown key 'holidays'"),
        ("extra_days_off:\n  - 2026-10-08\n  - 2026-13-40\n", 3, "not a date"),
        ("extra_days_off: [2026-10-08]\nextra_working_days:\n  - 2026-10-08\n", 3, "both as a day off"),
        ("agencies:\n  A: {lunch: 1}\n", 2, "unknown key 'lunch'"),
        ("procedures:\n  P: {supplement_mode: later}\n", 2, "restart or pause"),
        ("office_hours: [\"08:00-12:00\"\n", None, "not valid YAML"),
        ("receipt_cutoff: \"25:00\"\n", 1, "not a time of day"),
        ("procedures:\n  P: {online: yes}\n", 2, "online must be partial or full"),
        ("procedures:\n  P:\n    online: full\n    onlin: full\n", 4, "unknown key 'onlin' for procedure P"),
        ("office_hours: [\"08:00-12:00\"]\nappointment_tolerance_hours: -1\n", 2, "must be >= 0"),
        ("appointment_tolerance_hours: \"2\"\n", 1, "must be a number"),
        ("appointment_tolerance_hours: two hours\n", 1, "must be a number"),
        ("appointment_tolerance_hours: .inf\n", 1, "must be a number"),
        ("appointment_tolerance_hours: [1]\n", 1, "must be a single value"),
    ],
)
def test_invalid_files_are_refused_with_line_and_reason(text, line, words):
    with pytest.raises(CalendarFileError) as exc:
        parse_calendar(text, "calendar.yaml")
    if line is not None:
        assert exc.value.line == line
    assert words in exc.value.reason
    assert "calendar.yaml" in str(exc.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CalendarFileError, match="cannot read"):
        load_calendar(tmp_path / "nope.yaml")
