"""The simulated day (`tthc_sim`): valid v1 events, deterministic, and a plausible mix once replayed.

The shares below are what a provincial one-stop centre's day looks like (most dossiers early or on
time, some late, some supplemented, a few still open weeks later); if the generator drifts so far
that a demo would look odd, these fail.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import pytest
from tthc_contracts import VN_TZ, parse_dossier_event, parse_ts
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold
from tthc_core.indices import Period
from tthc_core.replay import replay
from tthc_sim import generate_day, generate_days

DAY = date(2026, 11, 23)  # a Monday; Tuesday 24/11/2026 is a public holiday (Ngày Văn hóa Việt Nam)
UNTIL = datetime(2027, 2, 1, tzinfo=VN_TZ)  # weeks after the generator's horizon: every event is in


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate_day(DAY, dossiers=300, seed=1)


@pytest.fixture(scope="module")
def replayed(events: list[dict]):
    parsed = [parse_dossier_event(e) for e in events]
    return replay(parsed, CalendarBook(), UNTIL, Period(date(2026, 11, 1), date(2027, 1, 31)))


def test_every_event_is_valid_v1_and_json_ready(events: list[dict]) -> None:
    assert len(events) > 600  # a few hundred dossiers with their whole lives
    for raw in events:
        assert json.loads(json.dumps(raw, ensure_ascii=False)) == raw
        parse_dossier_event(raw)  # raises on anything the contract refuses
        assert raw["occurred_at"].endswith("+07:00")


def test_same_seed_same_day_gives_the_same_events_and_another_seed_does_not() -> None:
    a = generate_day(DAY, dossiers=40, seed=7)
    assert a == generate_day(DAY, dossiers=40, seed=7)
    assert a != generate_day(DAY, dossiers=40, seed=8)


def test_the_command_line_writes_the_same_events_as_the_api() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tthc_sim", "--day", "2026-11-23", "--dossiers", "25", "--seed", "3"],
        capture_output=True, text=True, check=True, encoding="utf-8",
    )
    assert [json.loads(line) for line in out.stdout.splitlines()] == generate_day(DAY, dossiers=25, seed=3)


def test_dossier_ids_are_national_mahoso_of_the_day_and_event_ids_unique(events: list[dict]) -> None:
    ids = {e["dossier_id"] for e in events}
    assert len(ids) == 300
    assert all(re.fullmatch(r"000\.\d\d\.\d\d\.H10-261123-\d{4}", i) for i in ids)
    assert len({e["event_id"] for e in events}) == len(events)
    received = [e for e in events if e["type"] == "dossier.received"]
    # The MaHoSo prefix is the receiving agency's code.
    assert all(e["dossier_id"].startswith(e["data"]["receiving_agency"]["code"] + "-") for e in received)


def test_receipts_are_on_the_day_in_office_hours_and_later_steps_follow_in_office_time(events: list[dict]) -> None:
    cal = CalendarBook().for_agency("any")
    for e in events:
        at = parse_ts(e["occurred_at"])
        if e["type"] == "dossier.received":
            assert at.date() == DAY and cal.is_office_instant(at), e["occurred_at"]
        elif e["type"] != "dossier.submitted":
            # Desk actions: office time (or the end of an interval, 12:00 / 17:00) of a working day.
            assert cal.is_working_day(at.date()) and (cal.is_office_instant(at) or at.time().minute == 0), e
    assert not any(e["occurred_at"].startswith("2026-11-24") for e in events), "24/11/2026 is a holiday"


def test_a_realistic_mix_of_agencies_procedures_channels_units_and_applicants(events: list[dict]) -> None:
    received = [e["data"] for e in events if e["type"] == "dossier.received"]
    agencies = {d["handling_agency"]["name"] for d in received}
    assert {"Sở Tư pháp tỉnh Lạng Sơn", "Sở Nông nghiệp và Môi trường tỉnh Lạng Sơn"} <= agencies
    assert any(name.startswith(("UBND xã", "UBND phường")) for name in agencies)
    assert len({d["procedure"]["code"] for d in received}) >= 15
    assert all(re.fullmatch(r"[12]\.\d{6}", d["procedure"]["code"]) for d in received)
    assert {d["channel"] for d in received} == {"in_person", "online", "postal"}
    units = Counter(d["duration"]["unit"] for d in received)
    assert set(units) == {"working_days", "working_hours", "calendar_days", "months"}
    assert units["working_days"] > len(received) / 2
    kinds = Counter(d["applicant"]["kind"] for d in received)
    assert kinds["citizen"] > kinds["organization"] > 10
    assert all(d["applicant"]["name"] for d in received)


def test_before_the_2025_reforms_the_old_departments_and_districts_appear() -> None:
    received = [e["data"] for e in generate_day(date(2024, 5, 6), dossiers=300, seed=1) if e["type"] == "dossier.received"]
    agencies = {d["handling_agency"]["name"] for d in received}
    assert "Sở Kế hoạch và Đầu tư tỉnh Lạng Sơn" in agencies
    assert "Sở Tài nguyên và Môi trường tỉnh Lạng Sơn" in agencies
    assert any(name.startswith("UBND huyện") or name == "UBND Thành phố Lạng Sơn" for name in agencies)


def test_replay_yields_plausible_shares_of_outcomes(replayed) -> None:
    rows = [d.row() for d in replayed.dossiers]
    n = len(rows)
    assert 270 <= n <= 295  # a few are refused at intake and never received
    outcome = Counter(r["outcome"] for r in rows)
    closed = n - outcome[None]
    assert 0.85 <= closed / n <= 0.97
    assert 0.50 <= outcome["early"] / closed <= 0.85
    assert 0.04 <= outcome["late"] / closed <= 0.16
    assert outcome["on_time"] > 0
    supplemented = sum(r["supplement_requests"] >= 1 for r in rows)
    assert 0.06 <= supplemented / n <= 0.25
    assert sum(r["supplement_requests"] >= 2 for r in rows) >= 2  # "a few twice"
    states = Counter(r["state"] for r in rows)
    assert states["overdue"] >= 2 and states["awaiting_supplement"] >= 1  # still open weeks later
    assert sum(r["extensions"] for r in rows) >= 2
    assert replayed.drafts  # late dossiers owe apologies
    total = replayed.indices["total"]
    assert 0.8 <= total["on_time_rate"] <= 0.97


def test_every_kind_of_step_occurs(events: list[dict]) -> None:
    kinds = Counter(e["type"] for e in events)
    for t in ("submitted", "received", "refused", "transferred", "supplement_requested", "supplement_received",
              "paused", "resumed", "extended", "withdrawn", "stopped", "resolved", "returned"):
        assert kinds[f"dossier.{t}"] >= 1, t
    paused = [e for e in events if e["type"] == "dossier.paused"]
    assert Counter(e["data"]["reason"] for e in paused).most_common(1)[0][0] == "financial_obligation"


def test_late_dossiers_really_close_after_their_computed_due_date(events: list[dict], replayed) -> None:
    """Lateness comes from the calendar: the resolving event lies after due_at, early ones on an earlier date."""
    book = CalendarBook()
    by_dossier: dict[str, list] = defaultdict(list)
    for e in events:
        by_dossier[e["dossier_id"]].append(parse_dossier_event(e))
    seen = Counter()
    for d in replayed.dossiers:
        if d.outcome is None:
            continue
        state, _ = fold(by_dossier[d.dossier_id], book)
        closing = next(e for e in by_dossier[d.dossier_id] if e.type == state.closing_type)
        if d.outcome == "late":
            assert closing.occurred_at > state.due_at
        elif d.outcome == "early":
            assert closing.occurred_at.astimezone(VN_TZ).date() < state.due_at.astimezone(VN_TZ).date()
        seen[d.outcome] += 1
    assert seen["late"] and seen["early"]


def test_arrival_order_is_event_time_but_for_a_few_late_posts(events: list[dict]) -> None:
    times = [parse_ts(e["occurred_at"]) for e in events]
    inversions = sum(1 for a, b in itertools.pairwise(times) if b < a)
    assert 0 < inversions < len(events) * 0.06
    first_seen: dict[str, str] = {}
    for e in events:
        first_seen.setdefault(e["dossier_id"], e["type"])
    assert set(first_seen.values()) <= {"dossier.submitted", "dossier.received", "dossier.refused"}


def test_no_event_after_the_horizon_and_resends_repeat_an_event_id() -> None:
    events = generate_day(DAY, dossiers=100, seed=2, horizon_days=14, resends=0.05)
    horizon = datetime(2026, 12, 7, tzinfo=VN_TZ)
    assert max(parse_ts(e["occurred_at"]) for e in events) < horizon
    ids = Counter(e["event_id"] for e in events)
    assert 0 < sum(c - 1 for c in ids.values()) < len(events) * 0.1


def test_several_days_merge_in_event_time_order() -> None:
    events = generate_days(DAY, days=2, dossiers=20, seed=1, late_posts=0.0)
    times = [parse_ts(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert {e["dossier_id"][-11:-5] for e in events} == {"261123", "261124"}
    assert len({e["dossier_id"] for e in events}) == 40
    assert all(t >= datetime(2026, 11, 23, tzinfo=VN_TZ) - timedelta(hours=1) for t in times)


def test_slips_mostly_right_some_later_some_earlier_and_online_services_offered(events) -> None:
    from tthc_core.calendar_config import parse_calendar
    from tthc_sim import province_calendar

    book = CalendarBook(parse_calendar(province_calendar()))
    parsed = [parse_dossier_event(e) for e in events]
    total = replay(parsed, book, UNTIL, Period(date(2026, 11, 1), date(2027, 1, 31))).indices["total"]
    checked = total["appointment_checked"]
    assert 0.8 <= checked / total["received"] <= 0.97  # most receipts print an appointment
    assert 0.05 <= total["appointment_later"] / checked <= 0.2  # rounded to the end of the due day
    assert 0.01 <= total["appointment_earlier"] / checked <= 0.1  # a working day early
    assert 0.3 <= total["online_rate"] <= 0.6
    assert total["procedures_offered_online"] >= 6
    assert 0 < total["online_uptake_rate"] <= 1
