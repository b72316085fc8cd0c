"""When an apology draft is owed and when it is withdrawn (apology.md), on the deadline fold's events."""

from __future__ import annotations

from tests.support.events import AGENCY, at, event, extended, parsed, received
from tthc_core.apology import ApologyLedger, proposed_due_at
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold

BOOK = CalendarBook()


def drafts_after(evs, until, extensions=()):
    _, derived = fold(evs, BOOK, advance_to=until)
    ledger = ApologyLedger("D-1")
    for ext in extensions:
        ledger.on_extended(ext)
    for ev in derived:
        ledger.on_deadline_event(BOOK, ev)
    return ledger


def test_at_risk_drafts_once_and_an_on_time_close_cancels_it():
    evs = parsed(received(value=3), event("dossier.resolved", "2026-03-05T08:30", {"result": "approved"}))
    ledger = drafts_after(evs, at("2026-03-06T00:00"))
    assert [(d.kind, d.status) for d in ledger.drafts] == [("at_risk", "cancelled")]
    _, derived = fold(evs, BOOK, advance_to=at("2026-03-06T00:00"))
    assert all(ledger.on_deadline_event(BOOK, ev) == [] for ev in derived)  # redelivered: nothing new


def test_overdue_without_at_risk_moment_then_late_result():
    evs = parsed(received(value=1), event("dossier.resolved", "2026-03-04T10:00", {"result": "approved"}))
    ledger = drafts_after(evs, at("2026-03-05T00:00"))
    assert sorted((d.kind, d.status) for d in ledger.drafts) == [("late_result", "draft"), ("overdue", "draft")]
    assert all(d.agency.code == AGENCY["code"] for d in ledger.drafts)


def test_a_moved_due_date_withdraws_the_old_draft():
    evs = parsed(
        received(value=3),  # at risk 04/03 09:00
        event("dossier.supplement_requested", "2026-03-04T10:00", {"reason": "Thiếu"}),
        event("dossier.supplement_received", "2026-03-06T10:00", {"channel": "online"}),
    )
    ledger = drafts_after(evs, at("2026-03-06T11:00"))
    assert [(d.kind, d.status) for d in ledger.drafts] == [("at_risk", "cancelled")]


def test_no_draft_for_a_moment_after_the_extension_even_when_it_was_announced_late():
    (extension,) = parsed(extended("D-1", "2026-03-03T16:00", new_due_at="2026-03-10T09:00", reason="x"))
    # A live deadline service may announce the at-risk moment before it hears of the extension.
    ledger = drafts_after(parsed(received(value=3)), at("2026-03-04T10:00"), extensions=[extension])
    assert ledger.drafts == []


def test_proposed_appointment_is_half_the_duration_in_working_days():
    due = at("2026-03-05T17:00")
    from tthc_contracts.events import Duration

    assert proposed_due_at(BOOK, "A1", due, Duration(value=10, unit="working_days")) == at("2026-03-12T17:00")
    assert proposed_due_at(BOOK, "A1", due, Duration(value=1, unit="working_days")) == at("2026-03-06T17:00")
    assert proposed_due_at(BOOK, "A1", due, Duration(value=8, unit="working_hours")) == at("2026-03-06T17:00")
