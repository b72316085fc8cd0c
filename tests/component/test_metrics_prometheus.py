"""Metrics service, component level: what Prometheus scrapes from `/metrics`, and the consumers'
edge cases (dead letters, deadline counters). FastStream's TestKafkaBroker + SQLite.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from tthc_common.broker import KafkaMessage
from tthc_common.dead_letter import HEADER_REASON
from tthc_core.indices import FIGURES
from tthc_metrics.app import create_app
from tthc_metrics.config import MetricsSettings

from tests.support.examples import examples

INDEX_GAUGES = {f"tthc_index_{figure}" for figure in FIGURES}


@dataclass
class RunningMetrics:
    settings: MetricsSettings
    broker: Any
    http: httpx.AsyncClient
    dead_letters: list[KafkaMessage] = field(default_factory=list)

    async def publish(self, topic: str, value: bytes | str | dict[str, Any], key: str = "k") -> None:
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        raw = value.encode("utf-8") if isinstance(value, str) else value
        await self.broker.publish(raw, topic, key=key.encode())

    async def publish_dossier_lines(self, lines: list[str]) -> None:
        for line in lines:
            await self.publish(self.settings.topics.dossier_events, line, json.loads(line)["dossier_id"])

    async def scrape(self) -> str:
        response = await self.http.get("/metrics")
        assert response.status_code == 200
        return response.text

    async def scrape_after_refresh(self, timeout_s: float = 10.0) -> str:
        """Scrape once the background task has refreshed the gauges from everything stored so far."""
        now = time.time()
        async with asyncio.timeout(timeout_s):
            while True:
                text = await self.scrape()
                refreshed_at = value(samples(text), "tthc_index_last_refresh_timestamp_seconds")
                if refreshed_at is not None and refreshed_at >= now:
                    return text
                await asyncio.sleep(0.05)


@asynccontextmanager
async def running_metrics(tmp_path: Path) -> AsyncIterator[RunningMetrics]:
    settings = MetricsSettings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}",
                               topic_prefix=f"c-{uuid.uuid4().hex[:8]}.", gauge_refresh_interval_s=0.05)
    app = create_app(settings)
    router = app.state.kafka_router
    dead_letters: list[KafkaMessage] = []

    @router.subscriber(settings.topics.dead_letter, group_id="test-dead-letter-reader")
    async def read_dead_letters(msg: KafkaMessage) -> None:
        dead_letters.append(msg)

    transport = httpx.ASGITransport(app=app)
    async with (TestKafkaBroker(router.broker) as broker, app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://metrics") as http):
        yield RunningMetrics(settings, broker, http, dead_letters)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def example_lines(name: str) -> list[str]:
    return next(e for e in examples() if e.name == name).event_lines()


def personal_data(lines: list[str]) -> set[str]:
    out = set()
    for line in lines:
        applicant = json.loads(line)["data"].get("applicant") or {}
        out |= {v for k, v in applicant.items() if k != "kind" and isinstance(v, str)}
    return out


async def test_gauges_show_the_current_periods_by_agency_and_field_without_undefined_figures(
    tmp_path: Path,
) -> None:
    lines = example_lines("01-tet-2026")  # Feb 2026: one dossier, resolved early, nothing late
    agency, field_code = "000.00.12.H10", "G09-KH02"
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_dossier_lines(lines)
        found = samples(await metrics.scrape_after_refresh())

    watermark = datetime.fromisoformat("2026-02-27T08:10:00+07:00").timestamp()  # the latest event
    assert value(found, "tthc_metrics_watermark_seconds") == watermark

    for period in ("month", "quarter", "year"):
        for agency_label, field_label in (("", ""), (agency, ""), ("", field_code)):
            labels = {"period": period, "agency": agency_label, "field": field_label}
            assert value(found, "tthc_index_received", **labels) == 1.0
            assert value(found, "tthc_index_early", **labels) == 1.0
            assert value(found, "tthc_index_on_time_rate", **labels) == 1.0
            assert value(found, "tthc_index_avg_processing_days", **labels) == pytest.approx(4.5417)
    # no late dossier: the apology rates are undefined, so they have no series at all (not 0)
    assert not [k for k in found if k[0] in ("tthc_index_apology_coverage", "tthc_index_apology_timely_rate")]


async def test_gauges_carry_only_period_agency_field_labels_and_no_personal_data(tmp_path: Path) -> None:
    every_line = [line for e in examples() for line in e.event_lines()]
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_dossier_lines(every_line)
        text = await metrics.scrape_after_refresh()
    found = samples(text)

    # the current periods contain the latest event of all examples: 30/11/2026 11:00 (03-supplement-restart)
    watermark = datetime.fromisoformat("2026-11-30T11:00:00+07:00").timestamp()
    assert value(found, "tthc_metrics_watermark_seconds") == watermark

    index_series = [(name, dict(labels)) for name, labels in found if name in INDEX_GAUGES]
    assert {name for name, _ in index_series} >= {"tthc_index_received", "tthc_index_on_time_rate"}
    assert all(set(labels) == {"period", "agency", "field"} for _, labels in index_series)
    assert {labels["period"] for _, labels in index_series} == {"month", "quarter", "year"}
    assert all(not (labels["agency"] and labels["field"]) for _, labels in index_series)
    # 2026: 01 (1 dossier) + 03 (1) + 04 (2) + 05 (3); 2025's example 02 is not in the current year
    assert value(found, "tthc_index_received", period="year", agency="", field="") == 7.0
    assert value(found, "tthc_index_received", period="month", agency="", field="") == 1.0
    for secret in personal_data(every_line):
        assert secret not in text
    dossier_ids = {json.loads(line)["dossier_id"] for line in every_line}
    assert not [d for d in dossier_ids if d in text]
    procedures = {json.loads(line)["data"]["procedure"]["code"] for line in every_line if "procedure" in line}
    assert not [label for _, labels in index_series for label in labels.values() if label in procedures]


async def test_consumed_events_are_counted_by_type_and_faststream_reports_its_consumers(
    tmp_path: Path,
) -> None:
    lines = example_lines("05-extension-transfer-766")  # 15 lines, 2 of them delivered twice
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_dossier_lines(lines)
        found = samples(await metrics.scrape())

    stored = {json.loads(line)["event_id"]: json.loads(line)["type"] for line in lines}
    for event_type in set(stored.values()):
        expected = float(sum(t == event_type for t in stored.values()))
        stored_of_type = value(found, "tthc_metrics_consumed_events_total", stream="dossier", type=event_type)
        assert stored_of_type == expected
    duplicates = value(found, "tthc_metrics_duplicate_events_total", stream="dossier")
    assert duplicates == float(len(lines) - len(stored))
    handler = ("handler", metrics.settings.topics.dossier_events)
    received = [v for (name, labels), v in found.items()
                if name == "faststream_received_messages_total" and handler in labels]
    assert received == [float(len(lines))]


def deadline_closed(dossier_id: str, agency: str | None, outcome: str) -> dict[str, Any]:
    data: dict[str, Any] = {"outcome": outcome, "closed_at": "2026-02-26T15:20:00+07:00",
                            "due_at": "2026-02-27T10:00:00+07:00", "late_by_hours": None}
    if agency is not None:
        data["handling_agency"] = {"code": agency, "name": "Sở Tư pháp tỉnh Lạng Sơn"}
    return {"event_id": str(uuid.uuid4()), "type": "deadline.closed", "schema_version": 1,
            "occurred_at": "2026-02-26T15:20:00+07:00", "source": "tthc-deadline", "dossier_id": dossier_id,
            "data": data}


async def test_closed_and_on_time_dossiers_are_counted_per_agency_once_each_even_when_rejudged(tmp_path: Path) -> None:
    first = deadline_closed("D-1", "000.00.12.H10", "early")
    async with running_metrics(tmp_path) as metrics:
        topic = metrics.settings.topics.deadline_events
        await metrics.publish(topic, first, "D-1")
        await metrics.publish(topic, first, "D-1")  # redelivered
        await metrics.publish(topic, deadline_closed("D-2", "000.00.12.H10", "on_time"), "D-2")
        await metrics.publish(topic, deadline_closed("D-3", "000.00.12.H10", "late"), "D-3")
        await metrics.publish(topic, deadline_closed("D-4", "000.30.21.H10", "late"), "D-4")
        # D-3's close re-judged by a late event: published again, corrected, with a new event id.
        await metrics.publish(topic, deadline_closed("D-3", "000.00.12.H10", "on_time"), "D-3")
        found = samples(await metrics.scrape())

    closed = {(dict(labels)["agency"], dict(labels)["outcome"]): v
              for (name, labels), v in found.items() if name == "tthc_metrics_closed_dossiers_total"}
    assert closed == {("000.00.12.H10", "early"): 1.0, ("000.00.12.H10", "on_time"): 1.0,
                      ("000.00.12.H10", "late"): 1.0, ("000.30.21.H10", "late"): 1.0}
    stored = value(found, "tthc_metrics_consumed_events_total", stream="deadline", type="deadline.closed")
    assert stored == 5.0
    assert value(found, "tthc_metrics_duplicate_events_total", stream="deadline") == 1.0


@pytest.mark.parametrize(
    ("stream", "poison", "reason_mentions"),
    [
        ("dossier_events", b"{not json", "JSON"),
        ("dossier_events", "naive", "occurred_at"),
        ("apology_events", {"type": "apology.mislaid", "dossier_id": "D-1"}, "apology.mislaid"),
        ("deadline_events", {"type": "deadline.closed", "dossier_id": "D-1"}, "event_id"),
    ],
)
async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_next_one_is_processed(
    tmp_path: Path, stream: str, poison: Any, reason_mentions: str
) -> None:
    lines = example_lines("01-tet-2026")
    if poison == "naive":  # a valid event but for a timestamp without offset, with an applicant inside
        event = json.loads(lines[0])
        event["occurred_at"] = "2026-02-13T10:00:00"
        poison = event
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish(getattr(metrics.settings.topics, stream), poison)
        await metrics.publish_dossier_lines(lines)
        response = await metrics.http.get("/v1/indices", params={"from": "2026-02-01", "to": "2026-02-28"})

    assert len(metrics.dead_letters) == 1
    headers = metrics.dead_letters[0].headers
    assert reason_mentions in headers[HEADER_REASON]
    for secret in personal_data(lines):
        assert secret not in headers[HEADER_REASON]
    assert response.json()["total"]["closed"] == 1  # the consumer went on


async def test_metrics_carry_no_created_series(tmp_path: Path) -> None:
    async with running_metrics(tmp_path) as metrics:
        await metrics.publish_dossier_lines(example_lines("01-tet-2026"))
        text = await metrics.scrape_after_refresh()

    assert "tthc_metrics_consumed_events_total" in text
    assert "_created" not in text


async def test_openapi_documents_the_report_and_its_errors_and_asyncapi_the_consumed_events(
    tmp_path: Path,
) -> None:
    async with running_metrics(tmp_path) as metrics:
        openapi = (await metrics.http.get("/openapi.json")).json()
        asyncapi = (await metrics.http.get("/asyncapi.json")).json()

    operation = openapi["paths"]["/v1/indices"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "group_by", "until", "format"}
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/IndicesReport"}
    assert "text/csv" in ok
    assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    figures = openapi["components"]["schemas"]["Figures"]["properties"]
    assert set(figures) == set(FIGURES)

    schemas = asyncapi["components"]["schemas"]
    payloads = {name: schema for name, schema in schemas.items() if name.endswith(":Message:Payload")}
    assert len(payloads) == 3  # dossier, apology and deadline events: one message is one of the contract's
    referenced = json.dumps(payloads)
    for model in ("DossierReceived", "DossierTransferred", "ApologyIssued", "DeadlineClosed"):
        assert f"#/components/schemas/{model}" in referenced
        assert model in schemas
    assert all(schema.get("type") != "array" for schema in payloads.values())
