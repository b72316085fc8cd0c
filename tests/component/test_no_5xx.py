"""No input gets a 5xx from the deadline, apology and metrics services (issue 11.4), and every answer is one the
service's OpenAPI document announces (issue 12.1, 12.4).

For each service: a schemathesis run against its own `/openapi.json`, in process through the ASGI app (SQLite,
FastStream's in-memory Kafka), after events were fed to its consumers so that reads find dossiers, letters and
figures. Every operation gets inputs that fit the document (positive) and inputs that do not (negative), with a
valid key and without one where the service takes keys; a request naming an identifier is also sent with the id
of a seeded dossier or letter, so that issuing, rendering and reading run for real. Each answer must be below
500, carry a documented status, content type and headers, and match the documented schema: a 4xx is the one
error shape `ErrorBody`. The module prints the requests sent and the answers by status.

The metrics report takes its period and instant as plain strings, which schemathesis fills with text that is
never a date: a second run sends it real dates, periods and instants with every UTC offset. The cases of issue
11's table (`page=2**62`, a 1000-deep JSON body, `new_due_at` 9999-12-31T23:59:59-12:00) are rows of the refusal
table of `test_interfaces.py`, which also checks the error shape. Intake's run is in `test_intake_interfaces.py`.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi
from tthc_core.apology import apology_id_for

from tests.component import test_apology_service as apology_kit
from tests.component import test_deadline_service as deadline_kit
from tests.component import test_metrics_indices as metrics_kit
from tests.support.asgi import in_memory_kafka

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

# Generated cases per operation and mode (plus the documented examples); each is sent with every header set and
# seeded id. Some 4,000 requests in all, in about 40 s on a small VM.
def fuzz(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate], derandomize=True, database=None)

SEEDED_DOSSIER = "000.00.12.H10-260302-0001"
LETTER_READY = apology_id_for("D-READY", "at_risk", apology_kit.DUE)  # its receipt arrived: the DOCX renders
LETTER_WAITING = apology_id_for("D-WAITING", "overdue", apology_kit.DUE)  # no receipt yet: 409 for the DOCX


@dataclass
class Fuzzed:
    """A service under schemathesis: its document, what to send, and what it answered."""

    name: str
    schema: Any
    # Header sets each case is sent with (with a valid key, without one).
    header_sets: list[dict[str, str]]
    # path parameter -> ids of seeded things, sent besides the generated value
    seeded_ids: dict[str, list[str]]
    # operations (labels) whose seeded variant is skipped: see `apology` below
    not_seeded: set[str] = field(default_factory=set)
    max_examples: int = 100
    answers: collections.Counter[int] = field(default_factory=collections.Counter)
    by_operation: collections.Counter[str] = field(default_factory=collections.Counter)


def fuzzed(name: str, app: Any, seed: Any, **kwargs: Any) -> Fuzzed:
    return Fuzzed(name, schemathesis.openapi.from_asgi("/openapi.json", in_memory_kafka(app, seed)), **kwargs)


# ---- the three services, seeded through their consumers ---------------------------------------------------

async def seed_deadline(settings: Any, broker: Any) -> None:
    topics = settings.topics
    for n in range(1, 4):
        event = deadline_kit.received(f"{SEEDED_DOSSIER[:-1]}{n}", f"2026-03-0{n + 1}T09:00:00+07:00")
        await broker.publish(json.dumps(event).encode(), topics.dossier_events, key=event["dossier_id"].encode())
    await broker.publish(b'{"at": "2026-03-20T09:00:00+07:00"}', topics.deadline_ticks)  # all overdue by then


async def seed_apology(settings: Any, broker: Any) -> None:
    topics = settings.topics
    for event in (apology_kit.at_risk("D-READY"), apology_kit.overdue("D-WAITING")):
        await broker.publish(event.model_dump_json().encode(), topics.deadline_events, key=event.dossier_id.encode())
    receipt = apology_kit.received("D-READY")
    await broker.publish(json.dumps(receipt).encode(), topics.dossier_events, key=b"D-READY")


def seed_metrics(settings: Any) -> Callable[[Any], Any]:
    async def seed(broker: Any) -> None:
        for line in metrics_kit.load_example("01-tet-2026").lines:
            await broker.publish(line.encode(), settings.topics.dossier_events, key=json.loads(line)["dossier_id"].encode())
    return seed


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fuzzed]]:
    from tthc_apology.app import create_app as apology_app
    from tthc_deadline.app import create_app as deadline_app
    from tthc_metrics.app import create_app as metrics_app
    from tthc_metrics.config import MetricsSettings

    deadline_settings = deadline_kit.make_settings(tmp_path_factory.mktemp("deadline"), log_level="ERROR")
    apology_settings = apology_kit.make_settings(tmp_path_factory.mktemp("apology"), log_level="ERROR")
    metrics_settings = MetricsSettings(database_url=f"sqlite:///{tmp_path_factory.mktemp('metrics')}/metrics.db",
                                       topic_prefix="fuzz.", log_level="ERROR")
    running = {
        "deadline": fuzzed("deadline", deadline_app(deadline_settings),
                           lambda broker: seed_deadline(deadline_settings, broker),
                           header_sets=[{}], seeded_ids={"dossier_id": [SEEDED_DOSSIER]}),
        # The PDF of a seeded letter is left out: LibreOffice takes seconds per conversion (its route is
        # still fuzzed with generated ids, and its seeded DOCX renders).
        "apology": fuzzed("apology", apology_app(apology_settings),
                          lambda broker: seed_apology(apology_settings, broker),
                          header_sets=[apology_kit.AUTH, {}],
                          seeded_ids={"apology_id": [LETTER_READY, LETTER_WAITING], "dossier_id": ["D-READY"]},
                          not_seeded={"GET /v1/apologies/{apology_id}.pdf"}, max_examples=40),
        "metrics": fuzzed("metrics", metrics_app(metrics_settings), seed_metrics(metrics_settings),
                          header_sets=[{}], seeded_ids={}),
    }
    yield running
    asgi.shutdown_lifespans()
    for service in running.values():
        print(f"\nschemathesis against {service.name}: {sum(service.answers.values())} requests, answers by "
              f"status {dict(sorted(service.answers.items()))}; by operation {dict(service.by_operation)}")


def send(service: Fuzzed, case: Any) -> None:
    """`case` with every header set, and again with each seeded id in its path; every answer checked."""
    generated = dict(case.path_parameters or {})
    paths = [generated]
    if case.operation.label not in service.not_seeded:
        paths += [{**generated, name: seeded} for name, ids in service.seeded_ids.items() if name in generated
                  for seeded in ids]
    for path in paths:
        case.path_parameters = path
        for headers in service.header_sets:
            response = case.call(headers=headers)
            service.answers[response.status_code] += 1
            service.by_operation[case.operation.label] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
    case.path_parameters = generated


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("name", ["deadline", "apology", "metrics"])
def test_no_input_gets_a_server_error_or_an_undocumented_answer(services: dict[str, Fuzzed], name: str,
                                                                mode: GenerationMode) -> None:
    service = services[name]
    for result in service.schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(generation_mode=mode)]
        if mode is GenerationMode.POSITIVE:
            strategies += service.schema.get_strategies_from_examples(operation)
        for strategy in strategies:
            try:
                fuzz(service.max_examples)(given(case=strategy)(lambda case: send(service, case)))()
            except Unsatisfiable:
                # An operation without inputs (GET /healthz) has no negative case.
                assert mode is GenerationMode.NEGATIVE, operation.label


# Every date and instant Python holds. The two that overflow today (a period from 0001-01-01, an `until` in the first
# hours of year 1 east of UTC: a 500) are rows of test_interfaces' refusal table, marked until metrics refuses them.
# Mostly plausible periods (which must give reports), and any date at all (which must never give a 5xx).
DAYS = st.one_of(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)), st.dates())
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
INSTANTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)


def test_the_metrics_report_over_real_dates_periods_and_instants(services: dict[str, Fuzzed]) -> None:
    service = services["metrics"]
    operation = service.schema["/v1/indices"]["GET"]
    answers_before = collections.Counter(service.answers)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(start=DAYS, length=st.integers(min_value=-31, max_value=800), until=st.none() | INSTANTS,
           answer=st.sampled_from(["json", "csv"]), group_by=st.sampled_from(["", "agency", "field,channel"]))
    def check(start: date, length: int, until: datetime | None, answer: str, group_by: str) -> None:
        end = date.fromordinal(min(start.toordinal() + length, date.max.toordinal()))  # may lie before `start`
        query = {"from": start.isoformat(), "to": end.isoformat(), "format": answer}
        if until is not None:
            query["until"] = until.isoformat()
        if group_by:
            query["group_by"] = group_by
        send(service, operation.Case(query=query))

    check()
    answered = service.answers - answers_before
    assert answered[200] >= 20 and answered[422] >= 5, answered  # reports were computed, bad periods refused
