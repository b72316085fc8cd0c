"""Metrics service, component level: the HTTP report `GET /v1/indices` over events consumed from
Kafka (FastStream's TestKafkaBroker, in memory) into SQLite.

The oracle is `tthc replay` (`tthc_core.replay.replay`, the same core code) over the example's events:
the service must report its `indices.json` exactly, every grouping, whatever the order and the number of
deliveries of the events. The spec's `expected-indices.json` is checked too (`total` and `by_agency`).
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from sqlmodel import Session, select

from tthc_adapters.calendar_file import load_calendar
from tthc_contracts import parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import CalendarFileError
from tthc_core.deadlines import fold
from tthc_core.indices import FIGURES, GROUPINGS, Period
from tthc_metrics.app import create_app
from tthc_metrics.config import MetricsSettings
from tthc_metrics.models import DossierRow

from tests.support.examples import examples
from tests.support.replayed import replayed, without_service_fields

EXAMPLES = [e.name for e in examples()]


@dataclass(frozen=True)
class Example:
    name: str
    lines: list[str]  # events.jsonl, one JSON event per line, as the one-stop software sent them
    period_from: str
    period_to: str
    until: str
    expected: dict[str, Any]

    @property
    def query(self) -> dict[str, str]:
        return {"from": self.period_from, "to": self.period_to, "until": self.until}

    @property
    def period(self) -> Period:
        return Period(date.fromisoformat(self.period_from), date.fromisoformat(self.period_to))


def load_example(name: str) -> Example:
    example = next(e for e in examples() if e.name == name)
    args = example.args
    return Example(name, example.event_lines(), args["from"], args["to"], args["until"],
                   example.expected_indices())


@dataclass
class RunningMetrics:
    settings: MetricsSettings
    broker: Any
    http: httpx.AsyncClient
    app: Any

    async def publish_dossier_event(self, line: str | bytes) -> None:
        raw = line.encode("utf-8") if isinstance(line, str) else line
        key = json.loads(raw)["dossier_id"].encode("utf-8")
        await self.broker.publish(raw, self.settings.topics.dossier_events, key=key)

    async def publish_batch(self, lines: list[str]) -> None:
        await self.broker.publish_batch(*(line.encode("utf-8") for line in lines),
                                        topic=self.settings.topics.dossier_events)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self.broker.publish(json.dumps(event).encode("utf-8"), topic, key=event["dossier_id"].encode())

    async def indices(self, **params: Any) -> dict[str, Any]:
        response = await self.http.get("/v1/indices", params=params)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def running_metrics(tmp_path: Path, **settings: Any) -> AsyncIterator[RunningMetrics]:
    """The whole app: migrations at start, consumers on the in-memory broker, HTTP in process."""
    config = MetricsSettings(database_url=f"sqlite:///{tmp_path / f'metrics-{uuid.uuid4().hex[:6]}.db'}",
                             topic_prefix=f"c-{uuid.uuid4().hex[:8]}.", **settings)
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (TestKafkaBroker(app.state.broker) as broker, app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://metrics") as http):
        yield RunningMetrics(config, broker, http, app)


def figures_of(result: dict[str, Any]) -> dict[str, Any]:
    return {"total": result["total"], "by_agency": result["by_agency"]}


def expected_figures(example: Example) -> dict[str, Any]:
    return {"total": example.expected["total"], "by_agency": example.expected["by_agency"]}


@pytest.mark.parametrize("name", EXAMPLES)
async def test_each_example_reports_what_replay_gives(tmp_path: Path, name: str) -> None:
    example = load_example(name)
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        result = await metrics.indices(**example.query)

    assert (result["from"], result["to"]) == (example.period_from, example.period_to)
    assert without_service_fields(result) == replayed(example.lines, example.period, example.until)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_each_example_reports_the_spec_expected_figures(tmp_path: Path, name: str) -> None:
    example = load_example(name)
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        result = await metrics.indices(**example.query)

    assert figures_of(result) == expected_figures(example)


async def test_a_batch_of_every_example_at_once_gives_each_example_its_figures(tmp_path: Path) -> None:
    every = [load_example(name) for name in EXAMPLES]
    lines = [line for example in every for line in example.lines]
    random.Random("one-batch").shuffle(lines)
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_batch(lines + lines[:10])  # one Kafka batch, some events twice
        results = {e.name: await metrics.indices(**e.query) for e in every}

    for example in every:
        assert without_service_fields(results[example.name]) == replayed(lines, example.period, example.until)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_shuffled_and_redelivered_events_give_the_same_figures(tmp_path: Path, name: str) -> None:
    example = load_example(name)
    rng = random.Random(f"metrics-{name}")
    deliveries = example.lines + rng.sample(example.lines, k=max(1, len(example.lines) // 2))
    rng.shuffle(deliveries)
    async with running_metrics(tmp_path) as metrics:
        for line in deliveries:
            await metrics.publish_dossier_event(line)
        result = await metrics.indices(**example.query)
        metrics_text = (await metrics.http.get("/metrics")).text

    assert without_service_fields(result) == replayed(example.lines, example.period, example.until)
    # every redelivery was recognised as such, none stored twice
    duplicates = len(deliveries) - len(set(deliveries))
    assert f'tthc_metrics_duplicate_events_total{{stream="dossier"}} {float(duplicates)}' in metrics_text


@pytest.mark.parametrize("ask", [{"headers": {"Accept": "text/csv"}}, {"params": {"format": "csv"}},
                                 {"params": {"format": "csv"}, "headers": {"Accept": "application/json"}}])
async def test_csv_has_one_row_per_group_with_the_json_figures_and_the_names(
    tmp_path: Path, ask: dict[str, Any]
) -> None:
    example = load_example("05-extension-transfer-766")  # D2 transferred to another agency
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        as_json = await metrics.indices(**example.query)
        response = await metrics.http.get("/v1/indices", params={**example.query, **ask.get("params", {})},
                                          headers=ask.get("headers"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0].keys()) == ["group_by", "key", "name", *FIGURES]

    def parsed(row: dict[str, str]) -> dict[str, Any]:
        return {f: None if row[f] == "" else json.loads(row[f]) for f in FIGURES}

    expected_rows = [("total", "", "", as_json["total"])] + [
        (grouping, key, as_json["names"].get(grouping, {}).get(key, ""), figures)
        for grouping in GROUPINGS
        for key, figures in as_json[f"by_{grouping}"].items()
    ]
    assert [(r["group_by"], r["key"], r["name"], parsed(r)) for r in rows] == expected_rows
    # the names are those the events gave the agencies (the transfer's target included)
    events = [json.loads(line) for line in example.lines]
    given = {a["code"]: a["name"] for e in events for a in (
        e["data"].get("receiving_agency"), e["data"].get("handling_agency"), e["data"].get("to_agency")) if a}
    agency_rows = {r["key"]: r["name"] for r in rows if r["group_by"] == "agency"}
    assert agency_rows and agency_rows == {code: given[code] for code in agency_rows}
    assert set(agency_rows) == set(example.expected["by_agency"])
    assert as_json["names"]["agency"] == agency_rows


async def test_an_unknown_format_is_refused_in_the_one_error_shape(tmp_path: Path) -> None:
    async with running_metrics(tmp_path) as metrics:
        response = await metrics.http.get("/v1/indices", params={"from": "2026-01-01", "to": "2026-01-31",
                                                                 "format": "xlsx"})

    assert response.status_code == 422
    assert response.json() == {
        "errors": [{"field": "format", "reason": "unknown format (json or csv)"}]}


async def test_group_by_limits_the_tables(tmp_path: Path) -> None:
    example = load_example("05-extension-transfer-766")
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        repeated = await metrics.indices(**example.query, group_by=["channel", "agency"])
        comma = await metrics.indices(**example.query, group_by="agency,channel")
        everything = await metrics.indices(**example.query)

    assert {k for k in repeated if k.startswith("by_")} == {"by_agency", "by_channel"}
    assert repeated == comma
    assert {k for k in everything if k.startswith("by_")} == {
        "by_agency", "by_field", "by_procedure", "by_channel"}
    assert repeated["by_agency"] == everything["by_agency"] == replayed(
        example.lines, example.period, example.until)["by_agency"]
    assert set(repeated["names"]) == {"agency"}


def _event(example: Example, dossier_id: str, event_type: str, occurred_at: str, **data: Any) -> str:
    """A new event modelled on the example's first dossier.received (same procedure and agency)."""
    received = next(json.loads(line) for line in example.lines if '"dossier.received"' in line)
    event = {"event_id": str(uuid.uuid4()), "type": event_type, "schema_version": 1,
             "occurred_at": occurred_at, "source": received["source"], "dossier_id": dossier_id,
             "data": received["data"] if event_type == "dossier.received" else data}
    return json.dumps(event, ensure_ascii=False)


async def test_a_closed_period_keeps_its_figures_when_later_events_arrive(tmp_path: Path) -> None:
    january = load_example("05-extension-transfer-766")  # 2026-01; D3 is still open at the end of it
    period = {"from": january.period_from, "to": january.period_to}
    open_in_january = "000.00.12.H10-260105-0003"
    async with running_metrics(tmp_path) as metrics:
        for line in january.lines:
            await metrics.publish_dossier_event(line)
        # a dossier of February moves the watermark past January: January's cut is now 31/01 24:00
        await metrics.publish_dossier_event(
            _event(january, "000.00.12.H10-260203-0001", "dossier.received", "2026-02-03T09:00:00+07:00"))
        january_then = await metrics.indices(**period)
        february_then = await metrics.indices(**{"from": "2026-02-01", "to": "2026-02-28"})

        # later events: the February dossier closes, and January's open dossier closes in February
        await metrics.publish_dossier_event(_event(january, "000.00.12.H10-260203-0001", "dossier.resolved",
                                                   "2026-02-04T10:00:00+07:00", result="approved"))
        await metrics.publish_dossier_event(_event(january, open_in_january, "dossier.resolved",
                                                   "2026-02-05T10:00:00+07:00", result="approved"))
        january_now = await metrics.indices(**period)
        february_now = await metrics.indices(**{"from": "2026-02-01", "to": "2026-02-28"})

    assert january_then["cut"] == january_now["cut"] == "2026-02-01T00:00:00+07:00"
    assert figures_of(january_then) == figures_of(january_now) == figures_of(
        replayed(january.lines, january.period, january.until))
    assert january_now["total"]["open_overdue"] == 1  # D3 stood overdue at January's cut
    # February did see the new events (the service did not just stop listening)
    assert (february_then["total"]["closed"], february_now["total"]["closed"]) == (0, 2)


async def test_without_until_the_figures_stand_at_the_latest_event(tmp_path: Path) -> None:
    example = load_example("01-tet-2026")  # received 13/02, resolved 26/02 (early)
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_dossier_event(example.lines[0])  # the receipt only
        open_result = await metrics.indices(**{"from": "2026-02-01", "to": "2026-02-28"})
        for line in example.lines[1:]:
            await metrics.publish_dossier_event(line)
        closed_result = await metrics.indices(**{"from": "2026-02-01", "to": "2026-02-28"})

    assert open_result["cut"].startswith("2026-02-13T10:00:00")
    assert (open_result["total"]["received"], open_result["total"]["open_within"]) == (1, 1)
    assert open_result["total"]["on_time_rate"] is None  # nothing closed yet: undefined, not 0
    assert closed_result["total"]["closed"] == 1  # the event at the watermark itself counts


async def test_an_issued_apology_counts_for_a_late_dossier(tmp_path: Path) -> None:
    example = load_example("02-makeup-saturday-late")  # late, no at-risk moment, due 26/04/2025 09:30
    dossier_id = json.loads(example.lines[0])["dossier_id"]

    def issued(at: str) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "type": "apology.issued", "schema_version": 1,
                "occurred_at": at, "source": "tthc-apology", "dossier_id": dossier_id,
                "data": {"apology_id": str(uuid.uuid4()), "number": "05/PXL", "issued_at": at,
                         "new_due_at": "2025-05-06T10:00:00+07:00"}}

    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        before = await metrics.indices(**example.query)
        await metrics.publish(metrics.settings.topics.apology_events, issued("2025-04-28T09:00:00+07:00"))
        late_apology = await metrics.indices(**example.query)
        # an earlier letter (delivered late) becomes the first apology: in time, before the due instant
        await metrics.publish(metrics.settings.topics.apology_events, issued("2025-04-26T08:00:00+07:00"))
        timely_apology = await metrics.indices(**example.query)
        as_of_before_any_letter = await metrics.indices(
            **{**example.query, "until": "2025-04-26T08:00:00+07:00"})

    def apology_figures(result: dict[str, Any]) -> tuple[float, float]:
        return result["total"]["apology_coverage"], result["total"]["apology_timely_rate"]

    assert apology_figures(before) == (0.0, 0.0)
    assert apology_figures(late_apology) == (1.0, 0.0)
    assert apology_figures(timely_apology) == (1.0, 1.0)
    assert as_of_before_any_letter["total"]["late"] == 0  # not closed yet then


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-01-31"}, "from"),
        ({"from": "2026-13-01", "to": "2026-01-31"}, "from"),
        ({"from": "2026-02-30", "to": "2026-03-31"}, "from"),
        ({"from": "01/01/2026", "to": "2026-01-31"}, "from"),
        ({"from": "2026-02-01", "to": "2026-01-31"}, "to"),
        ({"from": "2026-02-01", "to": "9999-12-31"}, "to"),
        ({"from": "2026-01-01", "to": "2026-01-31", "group_by": "agency,applicant"}, "group_by"),
        ({"from": "2026-01-01", "to": "2026-01-31", "until": "2026-02-01T00:00:00"}, "until"),
        ({"from": "2026-01-01", "to": "2026-01-31", "until": "yesterday"}, "until"),
    ],
)
async def test_bad_parameters_are_refused_with_the_field_and_the_reason(
    tmp_path: Path, params: dict[str, str], field: str
) -> None:
    async with running_metrics(tmp_path) as metrics:
        response = await metrics.http.get("/v1/indices", params=params)

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert errors[0]["reason"]


async def test_until_with_an_unencoded_plus_is_understood(tmp_path: Path) -> None:
    example = load_example("01-tet-2026")
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        # '+' typed into a URL arrives as a space
        response = await metrics.http.get(
            f"/v1/indices?from={example.period_from}&to={example.period_to}&until=2026-03-01T00:00:00+07:00")

    assert response.status_code == 200, response.text
    assert without_service_fields(response.json()) == replayed(example.lines, example.period, example.until)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_the_stored_states_are_the_fold_of_every_event_whatever_the_order_and_batches(
    tmp_path: Path, name: str
) -> None:
    """Each dossier's state is kept incrementally (in-order events applied to it, an out-of-order one
    re-folds it from its log); whatever the delivery, it must be `fold` of all its events."""
    example = load_example(name)
    rng = random.Random(f"states-{name}")
    deliveries = example.lines + rng.sample(example.lines, k=max(1, len(example.lines) // 2))
    rng.shuffle(deliveries)
    async with running_metrics(tmp_path) as metrics:
        while deliveries:  # batches of 1 to 4 records
            size = rng.randint(1, 4)
            await metrics.publish_batch(deliveries[:size])
            deliveries = deliveries[size:]
        deps = metrics.app.state.deps
        with Session(deps.engine) as session:
            stored = {row.dossier_id: row for row in session.exec(select(DossierRow))}

    book = CalendarBook(load_calendar(None))
    logs: dict[str, list[Any]] = {}
    for line in example.lines:
        event = parse_dossier_event(json.loads(line))
        logs.setdefault(event.dossier_id, []).append(event)
    assert set(stored) == set(logs)
    for dossier_id, log in logs.items():
        state, _ = fold(log, book)
        assert stored[dossier_id].state == (None if state is None else state.to_json())
        assert stored[dossier_id].event_count == len({(e.source, e.event_id) for e in log})
        if state is not None:
            assert (stored[dossier_id].received_at, stored[dossier_id].closed_at) == (
                state.received_at, state.closed_at)
            assert stored[dossier_id].handling_agency == state.handling_agency.code


@pytest.mark.parametrize("name", EXAMPLES)
async def test_a_report_as_of_a_past_instant_is_what_replay_gives_then(tmp_path: Path, name: str) -> None:
    """A past cut folds the dossiers that changed after it; the others are read as stored: same figures."""
    example = load_example(name)
    times = sorted({json.loads(line)["occurred_at"] for line in example.lines})
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        as_of = {at: await metrics.indices(**{**example.query, "until": at}) for at in times}

    for at, result in as_of.items():
        assert without_service_fields(result) == replayed(example.lines, example.period, at), at


async def test_the_deployment_calendar_file_decides_the_due_dates_behind_the_figures(tmp_path: Path) -> None:
    example = load_example("01-tet-2026")  # early only because the Tết days 16-20/02 are days off
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_working_days: [2026-02-16, 2026-02-17, 2026-02-18, 2026-02-19, 2026-02-20]\n")
    async with running_metrics(tmp_path, calendar_file=calendar) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        result = await metrics.indices(**example.query)

    assert (result["total"]["early"], result["total"]["late"]) == (0, 1)


def test_a_calendar_file_that_does_not_parse_stops_the_start(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("office_hours: ['08:00-12:00']\nextra_days_off: [2026-02-30]\n")

    with pytest.raises(CalendarFileError) as refused:
        create_app(MetricsSettings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}",
                                   calendar_file=calendar))
    assert refused.value.line == 2
