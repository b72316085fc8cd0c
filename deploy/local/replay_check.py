"""What the running services say, next to what `tthc replay` computes from the same events.

    from replay_check import compare
    problems = compare(client, stack, events, first=date(2026, 11, 23), last=date(2026, 11, 30))

Compared: every field of every dossier (deadline `GET /v1/dossiers`), every apology draft (apology
`GET /v1/apologies` of every agency: id, kind, status, agency, due date) and every figure of every group
(metrics `GET /v1/indices` of the period, at the same cut as the replay). Used by `make demo`, the
end-to-end tests (chaos, durable restart) and the benchmarks, so that "the services agree with replay"
means one thing everywhere. An empty list means they agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx

DRAFT_FIELDS = ("apology_id", "dossier_id", "kind", "status", "agency", "due_at")
MAX_PAGE_SIZE = 500


@dataclass
class View:
    dossiers: dict[str, dict[str, Any]]
    drafts: dict[str, dict[str, Any]]  # apology_id -> DRAFT_FIELDS
    indices: dict[str, Any]


def pages(client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> list[Any]:
    """Every item of a paged list (`{items, page, page_size, total}`)."""
    items: list[Any] = []
    page = 1
    while True:
        r = client.get(url, params={**params, "page": page, "page_size": MAX_PAGE_SIZE}, headers=headers)
        r.raise_for_status()
        body = r.json()
        items.extend(body["items"])
        if page * body["page_size"] >= body["total"]:
            return items
        page += 1


def tick(stack: Any, at: datetime) -> None:
    """Tell the deadline service that time has reached `at`, as its own wall-clock tick would (and as
    `tthc replay --until` does at the end): every partition's dossiers then live at `at` (a stack that does
    not publish ticks otherwise keeps each partition at its latest event)."""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from tthc_contracts.derived import Tick
    from tthc_contracts.topics import Topics

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(Topics(stack.topic_prefix).deadline_ticks,
                                         Tick(at=at, instance="replay-check").model_dump_json().encode(),
                                         key=b"replay-check")
        finally:
            await producer.stop()

    asyncio.run(send())


def service_view(client: httpx.Client, stack: Any, first: date, last: date, until: datetime) -> View:
    dossiers = {r["dossier_id"]: r for r in pages(client, stack.url("deadline") + "/v1/dossiers", {})}
    drafts: dict[str, dict[str, Any]] = {}
    for agency, key in sorted(stack.keys.officer_keys.items()):
        for item in pages(client, stack.url("apology") + "/v1/apologies", {"agency": agency},
                          headers={"Authorization": f"Bearer {key}"}):
            drafts[item["apology_id"]] = _draft_fields(item)
    r = client.get(stack.url("metrics") + "/v1/indices",
                   params={"from": first.isoformat(), "to": last.isoformat(), "until": until.isoformat()})
    r.raise_for_status()
    return View(dossiers, drafts, r.json())


def _draft_fields(item: dict[str, Any]) -> dict[str, Any]:
    agency = item.get("agency")
    if isinstance(agency, dict):
        agency = agency.get("code")
    return {"apology_id": item["apology_id"], "dossier_id": item["dossier_id"], "kind": item["kind"],
            "status": item["status"], "agency": agency, "due_at": item["due_at"]}


def replay_view(events: list[dict[str, Any]], until: datetime, first: date, last: date, book: Any = None) -> View:
    from tthc_contracts import parse_dossier_event
    from tthc_core.calendar import CalendarBook
    from tthc_core.indices import Period
    from tthc_core.replay import replay

    result = replay([parse_dossier_event(e) for e in events], book or CalendarBook(), until, Period(first, last))
    drafts = {d.apology_id: {k: v for k, v in d.row().items() if k in DRAFT_FIELDS} for d in result.drafts}
    return View({d.dossier_id: d.row() for d in result.dossiers}, drafts, result.indices or {})


def differences(got: View, want: View, limit: int = 20) -> list[str]:
    """What differs, as readable lines (at most `limit` of each kind, then a count)."""
    problems: list[str] = []

    def add(kind: str, lines: list[str]) -> None:
        problems.extend(lines[:limit])
        if len(lines) > limit:
            problems.append(f"... and {len(lines) - limit} more {kind} differences")

    rows = []
    for dossier_id in sorted(set(got.dossiers) | set(want.dossiers)):
        a, b = got.dossiers.get(dossier_id), want.dossiers.get(dossier_id)
        if a is None or b is None:
            rows.append(f"dossier {dossier_id}: {'missing from the service' if a is None else 'not in replay'}")
            continue
        diff = {f: (a.get(f), b[f]) for f in b if a.get(f) != b[f]}
        if diff:
            rows.append(f"dossier {dossier_id}: (service, replay) {diff}")
    add("dossier", rows)

    drafts = []
    for apology_id in sorted(set(got.drafts) | set(want.drafts)):
        a, b = got.drafts.get(apology_id), want.drafts.get(apology_id)
        if a != b:
            drafts.append(f"apology {apology_id}: service {a} != replay {b}")
    add("apology", drafts)

    figures = []
    for table in ("total", "by_agency", "by_field", "by_procedure", "by_channel"):
        a, b = got.indices.get(table), want.indices.get(table)
        if table == "total":
            a, b = {"": a or {}}, {"": b or {}}
        for group in sorted(set(a or {}) | set(b or {})):
            fa, fb = (a or {}).get(group, {}), (b or {}).get(group, {})
            for figure in sorted(set(fa) | set(fb)):
                if fa.get(figure) != fb.get(figure):
                    figures.append(f"{table} {group or 'total'} {figure}: service {fa.get(figure)} != "
                                   f"replay {fb.get(figure)}")
    add("figure", figures)
    return problems


def compare(client: httpx.Client, stack: Any, events: list[dict[str, Any]], first: date, last: date,
            until: datetime | None = None, book: Any = None) -> list[str]:
    """The differences between the services and `tthc replay` of `events`, at `until` (default: just after
    the last event, which both then include)."""
    from tthc_contracts import parse_ts

    if until is None:
        until = max(parse_ts(e["occurred_at"]) for e in events) + timedelta(microseconds=1)
    tick(stack, until)
    return differences(service_view(client, stack, first, last, until), replay_view(events, until, first, last, book))


def compare_when_settled(client: httpx.Client, stack: Any, events: list[dict[str, Any]], first: date, last: date,
                         *, timeout_s: float, poll_s: float = 2.0) -> list[str]:
    """`compare` again every `poll_s` until the services agree with the replay or `timeout_s` has passed
    (the consumers may still be working through what was posted, or restarting); the last differences."""
    problems = ["not compared yet"]
    stop = time.monotonic() + timeout_s
    while problems and time.monotonic() < stop:
        time.sleep(poll_s)
        try:
            problems = compare(client, stack, events, first, last)
        except httpx.HTTPError as exc:
            problems = [f"a service did not answer: {exc}"]
    return problems
