"""Metrics service, component level: the HTTP report `GET /v1/indices` over events consumed from
Kafka (FastStream's TestKafkaBroker, in memory) into SQLite.

The five worked examples of the spec are the oracle: the figures the service reports for each
example's period and `until` must equal `expected-indices.json` (`total` and `by_agency`), whatever
the order and the number of deliveries of the events.
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from tthc_core.calendar_config import CalendarFileError
from tthc_core.indices import FIGURES, Period, compute_indices
from tthc_metrics.app import create_app
from tthc_metrics.config import MetricsSettings
from tthc_metrics.store import dossiers_at_cut

from tests.support.examples import examples

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
async def test_each_example_reports_the_expected_figures(tmp_path: Path, name: str) -> None:
    example = load_example(name)
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        result = await metrics.indices(**example.query)

    assert (result["from"], result["to"]) == (example.period_from, example.period_to)
    assert figures_of(result) == expected_figures(example)


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

    assert figures_of(result) == expected_figures(example)
    # every redelivery was recognised as such, none stored twice
    duplicates = len(deliveries) - len(set(deliveries))
    assert f'tthc_metrics_duplicate_events_total{{stream="dossier"}} {float(duplicates)}' in metrics_text


async def test_csv_has_one_row_per_group_with_the_json_figures(tmp_path: Path) -> None:
    example = load_example("05-extension-transfer-766")
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        as_json = await metrics.indices(**example.query)
        response = await metrics.http.get("/v1/indices", params=example.query, headers={"Accept": "text/csv"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0].keys()) == ["group_by", "key", *FIGURES]

    def parsed(row: dict[str, str]) -> dict[str, Any]:
        return {f: None if row[f] == "" else json.loads(row[f]) for f in FIGURES}

    expected_rows = [("total", "", as_json["total"])] + [
        (grouping, key, figures)
        for grouping in ("agency", "field", "procedure", "channel")
        for key, figures in as_json[f"by_{grouping}"].items()
    ]
    assert [(r["group_by"], r["key"], parsed(r)) for r in rows] == expected_rows
    assert {r["key"] for r in rows if r["group_by"] == "agency"} == set(example.expected["by_agency"])


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
    assert repeated["by_agency"] == everything["by_agency"] == example.expected["by_agency"]


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
    assert figures_of(january_then) == figures_of(january_now) == expected_figures(january)
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
    assert figures_of(response.json()) == expected_figures(example)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_the_stored_state_of_a_closed_dossier_is_what_the_fold_gives_at_the_cut(
    tmp_path: Path, name: str
) -> None:
    """Reports read a closed dossier's stored state instead of folding its events again: same figures."""
    example = load_example(name)
    async with running_metrics(tmp_path) as metrics:
        for line in example.lines:
            await metrics.publish_dossier_event(line)
        engine, book = metrics.app.state.engine, metrics.app.state.book
        period = Period(*(datetime.fromisoformat(d).date() for d in (example.period_from, example.period_to)))
        cut = period.cut(datetime.fromisoformat(example.until))
        stored, issued = dossiers_at_cut(engine, book, period.begins_at, cut)
        folded, _ = dossiers_at_cut(engine, book, period.begins_at, cut, use_closed_states=False)

    assert any(d.closed_at is not None for d in stored)
    rows = lambda dossiers: sorted((d.row() for d in dossiers), key=lambda r: r["dossier_id"])
    assert rows(stored) == rows(folded)
    assert (compute_indices(stored, period, cut, book, issued)
            == compute_indices(folded, period, cut, book, issued))


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
