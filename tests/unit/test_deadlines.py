"""The deadline fold: lifecycle rules of deadlines.md §2-8 on the spec's examples and odd days."""

from __future__ import annotations

import copy
import random

import pytest

from tests.support.events import at, event, extended, parsed, received
from tests.support.examples import examples
from tthc_contracts import parse_dossier_event, parse_ts
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar
from tthc_core.deadlines import Dossier, fold, reschedule

BOOK = CalendarBook()
EXAMPLES = examples()


def by_dossier(example):
    out: dict[str, list] = {}
    for raw in example.events():
        ev = parse_dossier_event(raw)
        out.setdefault(ev.dossier_id, []).append(ev)
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_examples_give_the_expected_dossier_rows(example):
    until = parse_ts(example.args["until"])
    evs = by_dossier(example)
    for expected in example.expected_dossiers():
        state, _ = fold(evs[expected["dossier_id"]], BOOK, until)
        assert state is not None and state.row() == expected


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
@pytest.mark.parametrize("seed", range(5))
def test_shuffled_and_duplicated_input_gives_the_in_order_result(example, seed):
    until = parse_ts(example.args["until"])
    rng = random.Random(seed)
    for dossier_id, evs in by_dossier(example).items():
        in_order, derived = fold(sorted(evs, key=lambda e: e.occurred_at), BOOK, until)
        noisy = evs + [copy.deepcopy(rng.choice(evs)) for _ in range(3)]
        rng.shuffle(noisy)
        shuffled, derived2 = fold(noisy, BOOK, until)
        assert shuffled.row() == in_order.row()
        assert [e.event_id for e in derived2] == [e.event_id for e in derived]


def test_moments_are_emitted_once_per_due_at_across_a_refold():
    evs = parsed(received(when="2026-03-02T09:00", value=3))
    state, first = fold(evs, BOOK, at("2026-03-06T09:00"))
    assert [e.type for e in first] == ["deadline.scheduled", "deadline.at_risk", "deadline.overdue"]
    # A restart re-folds with the keys it already published: nothing is emitted twice.
    again, second = fold(evs, BOOK, at("2026-03-07T09:00"), emitted=state.emitted)
    assert second == [] and again.state == "overdue"


def test_a_jumped_over_at_risk_moment_comes_before_the_overdue_one():
    _, out = fold(parsed(received()), BOOK, at("2026-04-01T00:00"))
    kinds = [(e.type, e.occurred_at) for e in out]
    assert kinds[1:] == [("deadline.at_risk", at("2026-03-04T09:00")), ("deadline.overdue", at("2026-03-05T09:00"))]


def test_events_before_the_receipt_are_held_until_it_arrives():
    resolved = event("dossier.resolved", "2026-03-04T10:00", {"result": "approved"})
    state, out = fold(parsed(resolved), BOOK)
    assert state is None and out == []
    state, _ = fold(parsed(resolved, received()), BOOK)
    assert state.outcome == "early" and state.closed_at == at("2026-03-04T10:00")


def test_the_first_receipt_in_event_order_wins():
    later, earlier = received(when="2026-03-03T09:00", value=5), received(when="2026-03-02T09:00", value=1)
    state, _ = fold(parsed(later, earlier), BOOK)
    assert state.received_at == at("2026-03-02T09:00") and state.due_at == at("2026-03-03T09:00")


def test_supplement_pause_mode_keeps_the_remaining_time():
    evs = parsed(
        received(value=3, supplement_mode="pause"),  # due Thu 05/03 09:00
        event("dossier.supplement_requested", "2026-03-03T10:00", {"reason": "Thiếu giấy tờ"}),
        event("dossier.supplement_received", "2026-03-10T15:30", {"channel": "online"}),
    )
    state, _ = fold(evs, BOOK)
    assert state.due_at == at("2026-03-12T14:30")  # 15 office hours left, as example 04's pause
    assert state.supplement_requests == 1


def test_a_pause_after_the_due_instant_does_not_move_it():
    evs = parsed(
        received(value=1),
        event("dossier.paused", "2026-03-04T10:00", {"reason": "financial_obligation"}),
        event("dossier.resumed", "2026-03-06T10:00"),
    )
    state, _ = fold(evs, BOOK, at("2026-03-06T11:00"))
    assert state.due_at == at("2026-03-03T09:00") and state.state == "overdue"


def test_one_stop_at_a_time():
    evs = parsed(
        received(value=3),
        event("dossier.supplement_requested", "2026-03-03T09:00", {"reason": "a"}),
        event("dossier.paused", "2026-03-03T10:00", {"reason": "other"}),
        event("dossier.supplement_requested", "2026-03-03T11:00", {"reason": "b"}),
    )
    state, _ = fold(evs, BOOK, at("2026-03-03T12:00"))
    assert state.state == "awaiting_supplement" and len(state.stops) == 1 and state.supplement_requests == 2


def test_a_second_extension_is_recorded_and_flagged():
    evs = parsed(
        received(value=3),
        extended("D-1", "2026-03-04T10:00", new_due_at="2026-03-09T09:00", reason="x"),
        extended("D-1", "2026-03-06T10:00", new_due_at="2026-03-11T09:00", reason="y"),
    )
    state, out = fold(evs, BOOK, at("2026-03-12T00:00"))
    assert state.extensions == 2 and state.extended_due_at == at("2026-03-11T09:00")
    assert state.due_at == at("2026-03-05T09:00")  # the committed due date judges the outcome
    overdue = [e for e in out if e.type == "deadline.overdue"]
    assert [e.data.due_at for e in overdue] == [at("2026-03-11T09:00")] and overdue[0].data.extended


def test_closing_while_awaiting_supplement_is_judged_at_the_request():
    evs = parsed(
        received(value=1),
        event("dossier.supplement_requested", "2026-03-02T15:00", {"reason": "a"}),
        event("dossier.stopped", "2026-03-20T10:00"),
    )
    state, _ = fold(evs, BOOK)
    assert state.judged_close == at("2026-03-02T15:00") and state.outcome == "early"


def test_receipt_cutoff_moves_the_start_to_the_next_working_day():
    book = CalendarBook(parse_calendar('receipt_cutoff: "15:00"\n'))
    state, _ = fold(parsed(received(when="2026-03-02T15:00", value=1)), book)
    assert state.start_at == at("2026-03-03T08:00") and state.due_at == at("2026-03-03T17:00")


@pytest.mark.parametrize(
    "when, value, unit, due",
    [
        ("2026-03-02T09:00", 10, "calendar_days", "2026-03-12T17:00"),
        ("2026-03-02T09:00", 5, "calendar_days", "2026-03-09T17:00"),  # Sat 07/03 -> Mon 09/03
        ("2026-01-30T09:00", 1, "months", "2026-03-02T17:00"),  # 28/02 is a Saturday
        ("2026-03-02T09:00", 0.5, "working_days", "2026-03-02T14:00"),
        ("2026-03-02T16:00", 2, "working_hours", "2026-03-03T09:00"),
    ],
)
def test_units(when, value, unit, due):
    state, _ = fold(parsed(received(when=when, value=value, unit=unit)), BOOK)
    assert state.due_at == at(due)


def test_state_survives_its_json_form():
    commune = {"code": "B", "name": "UBND xã"}
    transferred = event("dossier.transferred", "2026-03-02T10:00", {"to_agency": commune})
    evs = parsed(received(), transferred)
    state, _ = fold(evs, BOOK, at("2026-03-04T10:00"))
    again = Dossier.from_json(state.to_json())
    assert again.row() == state.row() and again.emitted == state.emitted and again.handling_agency.code == "B"


def test_a_changed_calendar_reschedules_an_open_dossier_once():
    evs = parsed(received(when="2026-10-07T09:00", value=3))  # due Mon 12/10 09:00 on the national calendar
    before, _ = fold(evs, BOOK, advance_to=at("2026-10-07T10:00"))
    assert before.due_at == at("2026-10-12T09:00")
    typhoon = CalendarBook(parse_calendar("extra_days_off: [2026-10-08]\n"))  # a closure announced later
    after, out = reschedule(evs, typhoon, before, at("2026-10-07T11:00"))
    assert after.due_at == at("2026-10-13T09:00")
    assert [(e.type, e.data.basis, e.data.due_at) for e in out] == [
        ("deadline.scheduled", "calendar_change", at("2026-10-13T09:00"))
    ]
    again, out2 = reschedule(evs, typhoon, after, at("2026-10-07T11:00"))
    assert out2 == [] and again.due_at == after.due_at


def test_advance_to_applies_every_event_then_lets_time_pass():
    evs = parsed(received(value=1), event("dossier.resolved", "2026-03-04T10:00", {"result": "approved"}))
    state, out = fold(evs, BOOK, advance_to=at("2026-03-04T10:00"))
    assert state.is_closed and state.outcome == "late"
    assert [e.type for e in out] == ["deadline.scheduled", "deadline.overdue", "deadline.closed"]


def test_a_late_pause_that_changes_the_outcome_publishes_the_corrected_close():
    # Example 04's D1 as a live service may see it: the pause arrives after the close.
    evs = parsed(
        received(value=3),  # due Thu 05/03 09:00
        event("dossier.resumed", "2026-03-10T15:30"),
        event("dossier.resolved", "2026-03-12T09:00", {"result": "approved"}),
    )
    first, out1 = fold(evs, BOOK, advance_to=at("2026-03-12T09:00"))
    assert first.outcome == "late"
    pause = event("dossier.paused", "2026-03-03T10:00", {"reason": "financial_obligation"})
    second, out2 = fold(evs + parsed(pause), BOOK, emitted=first.emitted, advance_to=at("2026-03-12T09:00"))
    assert second.outcome == "on_time" and second.due_at == at("2026-03-12T14:30")
    closes = [e for e in out2 if e.type == "deadline.closed"]
    assert [(e.data.outcome, e.data.due_at) for e in closes] == [("on_time", at("2026-03-12T14:30"))]
    _, out3 = fold(evs + parsed(pause), BOOK, emitted=second.emitted, advance_to=at("2026-03-12T09:00"))
    assert out3 == []



def test_the_last_close_published_is_the_outcome_even_when_it_goes_back():
    evs = parsed(received(value=1), event("dossier.resolved", "2026-03-04T10:00", {"result": "approved"}))
    late, _ = fold(evs, BOOK, advance_to=at("2026-03-05T00:00"))
    (late_key,) = [k for k in late.emitted if k.startswith("closed#")]
    # As if an on-time judgement had been published after it (a late event, since outweighed).
    on_time_key = "closed#1|" + late_key.split("|", 1)[1].replace("|late|", "|on_time|")
    again, out = fold(evs, BOOK, emitted=late.emitted | {on_time_key}, advance_to=at("2026-03-05T00:00"))
    closes = [e for e in out if e.type == "deadline.closed"]
    assert [c.data.outcome for c in closes] == ["late"]
    assert {k for k in again.emitted if k.startswith("closed#2|")}
