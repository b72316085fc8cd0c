"""Metrics service against a REAL Kafka broker and a REAL PostgreSQL server, run for real
(`python -m tthc_metrics` in a subprocess, configured by environment variables only).

The spec's examples are produced to the dossier topic the way intake publishes them (keyed by
dossier_id); the test polls `GET /v1/indices` until the service reports what `tthc replay` gives for
the same events (the same core code).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tthc_common.dead_letter import HEADER_CONSUMER, HEADER_REASON
from tthc_contracts.topics import Topics
from tthc_core.indices import Period
from tthc_sim import generate_days

from tests.support.examples import Example, examples
from tests.support.infra import create_topics, free_ports, service_env
from tests.support.replayed import replayed, without_service_fields

EXAMPLES = {e.name: e for e in examples()}
START_TIMEOUT_S = 90.0
FIGURES_TIMEOUT_S = 60.0


@dataclass
class MetricsProcess:
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    kafka: str
    topics: Topics
    env: dict[str, str]
    tmp_path: Path
    port: int

    def start(self, name: str = "metrics", port: int | None = None) -> MetricsProcess:
        log_path = self.tmp_path / f"{name}.log"
        port = port or self.port
        service = MetricsProcess(f"http://127.0.0.1:{port}", log_path)
        with open(log_path, "ab") as log:
            service.process = subprocess.Popen([sys.executable, "-m", "tthc_metrics"],
                                               env={**self.env, "METRICS_HTTP_PORT": str(port)},
                                               stdout=log, stderr=subprocess.STDOUT)
        return service


def stop(service: MetricsProcess) -> None:
    process = service.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # uvicorn shuts down: consumers stop, offsets committed
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@asynccontextmanager
async def running(
    stack: Stack, name: str = "metrics", port: int | None = None
) -> AsyncIterator[tuple[MetricsProcess, httpx.AsyncClient]]:
    service = stack.start(name, port)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
            await wait_ready(service, http)
            yield service, http
    except BaseException:
        print(f"---- {name} log ----\n{service.log_tail()}")
        raise
    finally:
        stop(service)


async def wait_ready(service: MetricsProcess, http: httpx.AsyncClient) -> None:
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            assert service.process is not None
            if service.process.poll() is not None:
                pytest.fail(f"the metrics service exited with {service.process.returncode}:\n"
                            f"{service.log_tail()}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)


@pytest.fixture
async def stack(kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int,
                tmp_path: Path) -> AsyncIterator[Stack]:
    topics = Topics(topic_prefix)
    await create_topics(kafka_bootstrap, topics.all())
    env = service_env("metrics", {
        "database_url": pg_database_url, "http_port": str(free_port), "consumer_group": f"{topic_prefix}tthc-metrics",
        "gauge_refresh_interval_s": "0.5", "retry_delay_s": "0.2", "log_format": "text",
    }, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, TTHC_TOPIC_PREFIX=topic_prefix)
    yield Stack(kafka_bootstrap, topics, env, tmp_path, free_port)


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def produce(producer: AIOKafkaProducer, topic: str, lines: list[str]) -> None:
    for line in lines:
        key = json.loads(line)["dossier_id"].encode("utf-8")
        await producer.send_and_wait(topic, line.encode("utf-8"), key=key,
                                     headers=[("content-type", b"application/json")])


def query(example: Example) -> dict[str, str]:
    args = example.args
    return {"from": args["from"], "to": args["to"], "until": args["until"]}


def period_of(example: Example) -> Period:
    return Period(date.fromisoformat(example.args["from"]), date.fromisoformat(example.args["to"]))


def expected(example: Example) -> dict[str, Any]:
    indices = replayed(example.event_lines(), period_of(example), example.args["until"])
    return {"total": indices["total"], "by_agency": indices["by_agency"]}


async def poll_figures(
    http: httpx.AsyncClient, params: dict[str, str], want: dict[str, Any]
) -> dict[str, Any]:
    """GET /v1/indices until total and by_agency equal `want`; fails with the last answer after a minute."""
    last: Any = None
    try:
        async with asyncio.timeout(FIGURES_TIMEOUT_S):
            while True:
                response = await http.get("/v1/indices", params=params)
                assert response.status_code == 200, response.text
                last = response.json()
                if {"total": last["total"], "by_agency": last["by_agency"]} == want:
                    return last
                await asyncio.sleep(0.3)
    except TimeoutError:
        answer = json.dumps(last, indent=1, ensure_ascii=False)
        pytest.fail(f"the figures never matched; last answer:\n{answer}")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_produced_example_events_reach_the_expected_figures(
    stack: Stack, producer: AIOKafkaProducer, name: str
) -> None:
    example = EXAMPLES[name]
    await produce(producer, stack.topics.dossier_events, example.event_lines())

    async with running(stack) as (_, http):
        result = await poll_figures(http, query(example), expected(example))
        csv_response = await http.get("/v1/indices", params=query(example), headers={"Accept": "text/csv"})

    assert (result["from"], result["to"]) == (example.args["from"], example.args["to"])
    assert csv_response.status_code == 200
    assert csv_response.text.splitlines()[1].startswith(f"total,,,{result['total']['received']},")


async def test_a_restart_resumes_where_it_stopped_without_counting_anything_twice(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    example = EXAMPLES["05-extension-transfer-766"]  # shuffled, some events twice already
    lines = example.event_lines()
    first, rest = lines[: len(lines) // 2], lines[len(lines) // 2:]
    topic = stack.topics.dossier_events
    await produce(producer, topic, first)

    async with running(stack, "metrics-1") as (_, http):
        async with asyncio.timeout(FIGURES_TIMEOUT_S):
            while stored_events(await scrape(http)) < distinct_events(first):
                await asyncio.sleep(0.3)

    # while the service is down: the rest, and the first half once more (a producer retrying)
    while_down = rest + first
    await produce(producer, topic, while_down)

    async with running(stack, "metrics-2") as (_, http):
        await poll_figures(http, query(example), expected(example))
        async with asyncio.timeout(FIGURES_TIMEOUT_S):  # until the re-sent first half is read too
            while consumed_messages(text := await scrape(http), topic) < len(while_down):
                await asyncio.sleep(0.3)
        final = await poll_figures(http, query(example), expected(example))

    # the restarted process read only what the first one had not committed ...
    assert consumed_messages(text, topic) == len(while_down)
    # ... and stored only the events it had never seen
    assert stored_events(text) == distinct_events(lines) - distinct_events(first)
    assert final["total"] == expected(example)["total"]


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


def distinct_events(lines: list[str]) -> int:
    return len({(e["source"], e["event_id"]) for e in map(json.loads, lines)})


def _sum(text: str, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def stored_events(text: str) -> float:
    return _sum(text, "tthc_metrics_consumed_events_total", stream="dossier")


def consumed_messages(text: str, topic: str) -> float:
    """Messages of `topic` the service has finished with (FastStream's consumer metrics)."""
    return _sum(text, "faststream_received_processed_messages_total", handler=topic)


async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_is_counted(
    stack: Stack, producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    example = EXAMPLES["01-tet-2026"]
    poison = b'{"type": "dossier.received", "oops"'
    await producer.send_and_wait(stack.topics.dossier_events, poison, key=b"D-x")
    await produce(producer, stack.topics.dossier_events, example.event_lines())

    async with running(stack) as (_, http):
        await poll_figures(http, query(example), expected(example))
        readiness = (await http.get("/readyz")).json()

    consumer = AIOKafkaConsumer(stack.topics.dead_letter, bootstrap_servers=kafka_bootstrap,
                                group_id=f"{topic_prefix}dead-letter-check", auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            records: list[Any] = []
            while not records:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in records[0].headers}
    assert records[0].value == poison
    assert "JSON" in headers[HEADER_REASON]
    assert headers[HEADER_CONSUMER] == f"{topic_prefix}tthc-metrics"
    assert readiness == {"status": "ready", "checks": {"kafka": "ok", "database": "ok"}}


async def test_apology_and_deadline_events_feed_the_figures_and_the_counters(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    example = EXAMPLES["02-makeup-saturday-late"]  # one dossier, late, no apology: coverage 0
    dossier_id = example.events()[0]["dossier_id"]
    issued = {"event_id": "7d1c0a52-1b7e-4f60-9a55-0c2b51e0a001", "type": "apology.issued",
              "schema_version": 1, "occurred_at": "2025-04-26T08:00:00+07:00", "source": "tthc-apology",
              "dossier_id": dossier_id,
              "data": {"apology_id": "a-1", "number": "05/PXL", "issued_at": "2025-04-26T08:00:00+07:00",
                       "new_due_at": "2025-05-06T10:00:00+07:00"}}
    closed = {"event_id": "7d1c0a52-1b7e-4f60-9a55-0c2b51e0a002", "type": "deadline.closed",
              "schema_version": 1, "occurred_at": "2025-05-05T10:00:00+07:00", "source": "tthc-deadline",
              "dossier_id": dossier_id,
              "data": {"outcome": "late", "closed_at": "2025-05-05T10:00:00+07:00",
                       "due_at": "2025-04-26T09:30:00+07:00", "late_by_hours": 24.5,
                       "handling_agency": {"code": "000.00.15.H10", "name": "Sở KH&ĐT"}}}
    await produce(producer, stack.topics.dossier_events, example.event_lines())
    await produce(producer, stack.topics.apology_events, [json.dumps(issued)] * 2)
    await produce(producer, stack.topics.deadline_events, [json.dumps(closed)] * 2)

    want = expected(example)
    for table in (want["total"], *want["by_agency"].values()):
        table.update(apology_coverage=1.0, apology_timely_rate=1.0)
    async with running(stack) as (_, http):
        await poll_figures(http, query(example), want)
        async with asyncio.timeout(FIGURES_TIMEOUT_S):  # both deliveries of deadline.closed read
            while consumed_messages(text := await scrape(http), stack.topics.deadline_events) < 2:
                await asyncio.sleep(0.3)

    assert _sum(text, "tthc_metrics_closed_dossiers_total", agency="000.00.15.H10", outcome="late") == 1.0
    assert _sum(text, "tthc_metrics_duplicate_events_total", stream="deadline") == 1.0


async def test_two_replicas_in_one_group_share_the_partitions_and_give_the_figures_of_one(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    """Issue 10.3: no lock shared by all dossiers. Two processes of the service in one consumer group read
    the 4 partitions of the dossier topic side by side, each keeping its dossiers' states in the one
    database, and report what one process (and `tthc replay`) gives."""
    simulated = generate_days(date(2026, 3, 2), 3, dossiers=60, seed=7)
    lines = [json.dumps(e, ensure_ascii=False) for e in simulated]
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    until = "2026-06-01T00:00:00+07:00"  # after every event of the simulated days
    params = {"from": "2026-03-01", "to": "2026-03-31", "until": until}
    want = without_service_fields(replayed(lines, period, until))
    topic = stack.topics.dossier_events
    ports = free_ports(2)

    async with (running(stack, "metrics-a", ports[0]) as (_, http_a),
                running(stack, "metrics-b", ports[1]) as (_, http_b)):
        await produce(producer, topic, lines)
        async with asyncio.timeout(FIGURES_TIMEOUT_S):
            while sum([consumed_messages(await scrape(h), topic) for h in (http_a, http_b)]) < len(lines):
                await asyncio.sleep(0.3)
        texts = [await scrape(http) for http in (http_a, http_b)]
        answers = [(await http.get("/v1/indices", params=params)).json() for http in (http_a, http_b)]

    # both read part of the topic, and together every record once
    assert all(consumed_messages(text, topic) > 0 for text in texts)
    assert sum(stored_events(text) for text in texts) == distinct_events(lines)
    for answer in answers:
        got = without_service_fields(answer)
        diff = {(k, g): {f: (got[k].get(g, {}).get(f), want[k][g][f]) for f in want[k][g]
                         if got[k].get(g, {}).get(f) != want[k][g][f]}
                for k in want if isinstance(want[k], dict) for g in want[k]
                if isinstance(want[k][g], dict) and got[k].get(g) != want[k][g]}
        assert diff == {}
    assert want["total"]["received"] > 100
