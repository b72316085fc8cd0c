"""The four real services as processes (deploy/local/stack.py) on a real broker and PostgreSQL.

A small simulated day goes in through intake's HTTP API; the due dates the deadline service serves must
be the ones `tthc_core`'s replay computes from the same events, and metrics must count the same dossiers.
The second test crashes the deadline service (SIGKILL) half-way and restarts it: nothing may be lost
or counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tthc_contracts import parse_dossier_event, parse_ts
from tthc_core.calendar import CalendarBook
from tthc_core.replay import replay
from tthc_sim import generate_day

from tests.support.stack import event_time_stack, stack_module

DAY = date(2026, 11, 23)
COMPARED = ("handling_agency", "received_at", "start_at", "due_at_receipt", "due_at", "extended_due_at",
            "at_risk_at", "outcome", "closed_at", "late_by_hours", "supplement_requests", "extensions")


@pytest.fixture
def day_events() -> list[dict[str, Any]]:
    return generate_day(DAY, dossiers=30, seed=5, resends=0.03)


@pytest.fixture
def stack(kafka_bootstrap: str, topic_prefix: str, service_databases: dict[str, str], tmp_path: Path,
          day_events: list[dict[str, Any]]) -> Iterator[Any]:
    agencies = sorted({e["data"]["handling_agency"]["code"] for e in day_events if e["type"] == "dossier.received"})
    with event_time_stack(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix,
                          service_databases=service_databases, var_dir=tmp_path / "var",
                          officer_agencies=agencies) as s:
        yield s
    assert all(v["pid"] is None for v in s.status().values())


def _expected(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    until = max(parse_ts(e["occurred_at"]) for e in events) + timedelta(microseconds=1)
    result = replay([parse_dossier_event(e) for e in events], CalendarBook(), until, None)
    return {d.dossier_id: d.row() for d in result.dossiers}


def _post(client: httpx.Client, stack: Any, events: list[dict[str, Any]]) -> dict[str, int]:
    r = client.post(stack.url("intake") + "/v1/events", json=events,
                    headers={"Authorization": f"Bearer {stack.intake_key}"})
    assert r.status_code == 202, r.text
    return r.json()


def _served_when_settled(client: httpx.Client, stack: Any, expected: dict[str, dict[str, Any]],
                         timeout_s: float = 180) -> dict[str, dict[str, Any]]:
    """Every dossier as the deadline service serves it, once all are there and closures caught up."""
    want_closed = sum(row["closed_at"] is not None for row in expected.values())
    end = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < end:
        body = client.get(stack.url("deadline") + "/v1/dossiers", params={"page_size": 500}).json()
        rows = {r["dossier_id"]: r for r in body["items"]}
        last = (len(rows), sum(r["closed_at"] is not None for r in rows.values()))
        if last == (len(expected), want_closed):
            return rows
        time.sleep(0.5)
    pytest.fail(f"deadline service has (dossiers, closed) = {last}, expected ({len(expected)}, {want_closed})\n"
                + stack_module.log_tail(stack.log_path("deadline"), 30))


def test_a_small_day_through_the_real_services_gives_the_replays_due_dates(
    stack: Any, day_events: list[dict[str, Any]]
) -> None:
    expected = _expected(day_events)
    assert 25 <= len(expected) <= 30
    with httpx.Client(timeout=60) as client:
        body = _post(client, stack, day_events)
        unique = len({e["event_id"] for e in day_events})
        assert body["accepted"] + body["duplicates"] == len(day_events)
        assert body["accepted"] == unique  # the one-stop software's resends are recognised

        served = _served_when_settled(client, stack, expected)
        # One dossier read on its own, the way a one-stop officer's screen asks for it.
        some_id = min(expected)
        single = client.get(stack.url("deadline") + f"/v1/dossiers/{some_id}").json()
        assert single["due_at"] == expected[some_id]["due_at"]

        for dossier_id, row in expected.items():
            got = {f: served[dossier_id][f] for f in COMPARED}
            assert got == {f: row[f] for f in COMPARED}, dossier_id
        # The generated day has dossiers whose due date moved (supplementation restart, NVTC pause).
        assert any(r["due_at"] != r["due_at_receipt"] for r in expected.values())

        last_day = max(parse_ts(e["occurred_at"]) for e in day_events).date()
        figures = client.get(stack.url("metrics") + "/v1/indices",
                             params={"from": DAY.isoformat(), "to": last_day.isoformat(), "group_by": "agency"})
        assert figures.status_code == 200
        total = figures.json()["total"]
        deadline_end = time.monotonic() + 60
        while total["closed"] != sum(r["closed_at"] is not None for r in expected.values()):
            assert time.monotonic() < deadline_end, f"metrics stuck at {total}"
            time.sleep(0.5)
            total = client.get(stack.url("metrics") + "/v1/indices", params={
                "from": DAY.isoformat(), "to": last_day.isoformat(), "group_by": "agency"}).json()["total"]
        assert total["received"] == len(expected)
        assert total["late"] == sum(r["outcome"] == "late" for r in expected.values())


def test_the_deadline_service_killed_half_way_loses_and_doubles_nothing(
    stack: Any, day_events: list[dict[str, Any]]
) -> None:
    expected = _expected(day_events)
    half = len(day_events) // 2
    with httpx.Client(timeout=60) as client:
        _post(client, stack, day_events[:half])
        time.sleep(1.0)  # let it take part of the first half
        stack.kill("deadline")  # SIGKILL: no graceful shutdown, uncommitted offsets and all
        _post(client, stack, day_events[half:])  # intake keeps accepting while deadline is down
        stack.restart("deadline")
        served = _served_when_settled(client, stack, expected)
    for dossier_id, row in expected.items():
        assert {f: served[dossier_id][f] for f in COMPARED} == {f: row[f] for f in COMPARED}, dossier_id
        assert served[dossier_id]["supplement_requests"] == row["supplement_requests"]  # nothing applied twice
