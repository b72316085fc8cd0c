"""The four services explain themselves (issue 12.1, 12.2, 12.4), read as a vendor or a new consumer would:

- the OpenAPI document of each validates, documents every `/v1/` operation's inputs, its answer and every error
  status with the one error shape `ErrorBody`, and declares the bearer scheme where a key is needed;
- the AsyncAPI document of each lists what it consumes and publishes, each message one event of the contract
  (its models, not an empty or array payload);
- every refusal of every service, of each kind it has (401, 403, 404, 405, 409, 413, 415, 422), is the one error
  shape `{"errors": [{"index"?, "field"?, "reason"}]}` with a plain reason that never repeats the input, and its
  status is one the operation documents;
- every list pages the same way `{items, page, page_size, total}`: the documented maximum page size is taken, one
  more is refused (422), never quietly capped; the metrics report gives CSV by `?format=csv` and by `Accept`.

The services run in process: SQLite, FastStream's in-memory Kafka, HTTP through the ASGI transport.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args
from urllib.parse import unquote

import httpx
import pytest
from openapi_spec_validator import validate as validate_openapi
from tthc_common.errors import MAX_PAGE_SIZE
from tthc_contracts.derived import ApologyEvent, DeadlineEvent
from tthc_contracts.events import DossierEvent
from tthc_core.apology import apology_id_for

from tests.component import test_apology_service as apology_kit
from tests.component import test_deadline_service as deadline_kit
from tests.component import test_intake as intake_kit
from tests.component import test_metrics_indices as metrics_kit

SERVICES = ["intake", "deadline", "apology", "metrics"]
ECHO = "zq-echo-7731"  # put in bad inputs: no reason may repeat it


def models(union: Any) -> set[str]:
    """The contract models of a discriminated union (`Annotated[Union[...], Field(discriminator=...)]`)."""
    return {member.__name__ for member in get_args(get_args(union)[0])}


# ---- the services ------------------------------------------------------------------------------------------

@dataclass
class Running:
    name: str
    client: httpx.AsyncClient
    settings: Any
    app: Any
    # the key header of an authorised caller ({} for a service without keys)
    auth: dict[str, str]


@pytest.fixture(scope="module")
async def intake(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    settings = intake_kit.make_settings(tmp_path_factory.mktemp("intake"), log_level="ERROR")
    async for running in intake_kit.running_intake(settings):
        yield Running("intake", running.client, settings, running.app, intake_kit.AUTH)


@pytest.fixture(scope="module")
async def deadline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    settings = deadline_kit.make_settings(tmp_path_factory.mktemp("deadline"), log_level="ERROR")
    async with deadline_kit.running_deadline(settings) as running:
        for n in range(1, 4):
            await running.send(deadline_kit.received(f"D-{n}", f"2026-03-0{n + 1}T09:00:00+07:00"))
        await running.settled()
        yield Running("deadline", running.http, settings, running.app, {})


LETTER = apology_id_for("D-1", "at_risk", apology_kit.DUE)
ANOTHER_AGENCYS_LETTER = apology_id_for("D-OTHER", "at_risk", apology_kit.DUE)
CANCELLED_LETTER = apology_id_for("D-CANCELLED", "at_risk", apology_kit.DUE)


@pytest.fixture(scope="module")
async def apology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    settings = apology_kit.make_settings(tmp_path_factory.mktemp("apology"), log_level="ERROR")
    async for running in apology_kit.running(settings):
        for dossier in ("D-1", "D-2", "D-3", "D-CANCELLED"):
            await running.deadline(apology_kit.at_risk(dossier))
        await running.deadline(apology_kit.closed("D-CANCELLED", "early", apology_kit.DUE - timedelta(hours=30)))
        await running.deadline(apology_kit.at_risk("D-OTHER", agency=apology_kit.OTHER_AGENCY))
        yield Running("apology", running.client, settings, running.app, apology_kit.AUTH)


@pytest.fixture(scope="module")
async def metrics(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with metrics_kit.running_metrics(tmp_path_factory.mktemp("metrics"), log_level="ERROR") as running:
        for line in metrics_kit.load_example("01-tet-2026").lines:
            await running.publish_dossier_event(line)
        yield Running("metrics", running.http, running.settings, running.app, {})


@pytest.fixture(scope="module")
def services(intake: Running, deadline: Running, apology: Running, metrics: Running) -> dict[str, Running]:
    return {s.name: s for s in (intake, deadline, apology, metrics)}


@pytest.fixture(scope="module")
async def openapi(services: dict[str, Running]) -> dict[str, dict[str, Any]]:
    documents = {}
    for name, service in services.items():
        response = await service.client.get("/openapi.json")
        assert response.status_code == 200, name
        documents[name] = response.json()
    return documents


@pytest.fixture(scope="module")
def fresh_apps(services: dict[str, Running]) -> dict[str, Any]:
    """Each service's app as built by `create_app`, not started: the running ones above carry the tests' own
    capturing subscribers, which are not part of what the service consumes."""
    from tthc_apology.app import create_app as apology_app
    from tthc_deadline.app import create_app as deadline_app
    from tthc_intake.app import create_app as intake_app
    from tthc_metrics.app import create_app as metrics_app

    makers = {"intake": intake_app, "deadline": deadline_app, "apology": apology_app, "metrics": metrics_app}
    return {name: makers[name](service.settings) for name, service in services.items()}


async def get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


@pytest.fixture(scope="module")
async def asyncapi(fresh_apps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What `/asyncapi.json` serves: the document is there before the service starts."""
    documents = {}
    for name, app in fresh_apps.items():
        response = await get(app, "/asyncapi.json")
        assert response.status_code == 200, name
        documents[name] = response.json()
    return documents


def v1_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, item in document["paths"].items() if path.startswith("/v1/")
            for method, operation in item.items()]


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return node  # type: ignore[no-any-return]


def deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, following `$ref`s (an operation's message points at its channel's, which points at a component)."""
    while "$ref" in node:
        node = resolve(document, node["$ref"])
    return node


# ---- OpenAPI -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SERVICES)
def test_the_openapi_document_is_valid_and_lists_the_service_s_operations(openapi: dict[str, Any], name: str) -> None:
    document = openapi[name]
    validate_openapi(document)

    expected = {
        "intake": {("post", "/v1/events"), ("get", "/v1/schemas"), ("get", "/v1/schemas/{event_type}")},
        "deadline": {("get", "/v1/dossiers"), ("get", "/v1/dossiers/{dossier_id}")},
        "apology": {("get", "/v1/apologies"), ("get", "/v1/apologies/{apology_id}"),
                    ("get", "/v1/apologies/{apology_id}.docx"), ("get", "/v1/apologies/{apology_id}.pdf"),
                    ("post", "/v1/apologies/{apology_id}/issue"), ("get", "/v1/dossiers/{dossier_id}/apologies")},
        "metrics": {("get", "/v1/indices")},
    }[name]
    assert expected <= {(method, path) for method, path, _ in v1_operations(document)}
    assert {"/healthz", "/readyz", "/metrics"} <= set(document["paths"])


# What intake's document gets wrong today, to be fixed in services/intake (see the report); the test fails when a
# fix lands, so that the entry is removed.
KNOWN_DEFECTS: dict[str, set[str]] = {}


PORTAL_SHAPE = "DvcqgRefusal"


def documentation_defects(document: dict[str, Any]) -> set[str]:
    """Every way the document fails to say what an operation under /v1/ takes and answers."""
    defects = set()
    error_body = document["components"]["schemas"]["ErrorBody"]
    problem = resolve(document, error_body["properties"]["errors"]["items"]["$ref"])
    if error_body["required"] != ["errors"] or set(problem["properties"]) != {"index", "field", "reason"} \
            or problem["required"] != ["reason"]:
        defects.add("ErrorBody is not the one error shape")
    # FastAPI's own `{"detail": [...]}` is never answered (every service installs the one shape).
    if {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"]):
        defects.add("components: FastAPI's HTTPValidationError")
    for method, path, operation in v1_operations(document):
        label = f"{method.upper()} {path}"
        for parameter in operation.get("parameters", []):
            if not parameter.get("schema"):
                defects.add(f"{label} {parameter['name']}: no schema")
        if method in ("post", "put", "patch") and not operation.get("requestBody", {}).get(
                "content", {}).get("application/json", {}).get("schema"):
            defects.add(f"{label}: no JSON request body schema")
        answers = operation["responses"]
        successes = [status for status in answers if status.startswith("2")]
        if len(successes) != 1:
            defects.add(f"{label}: {len(successes)} success answers")
        for status in successes:
            for media, content in answers[status].get("content", {}).items():
                if not content.get("schema"):
                    defects.add(f"{label} {status}: {media} without a schema")
        errors = {status for status in answers if status[0] in "45"}
        if "422" not in errors and (operation.get("parameters") or operation.get("requestBody")):
            defects.add(f"{label}: 422 not documented")
        # The one deliberate exception: the national portal's own answer shape (dvcqg.md), which the vendors'
        # synchronisation already reads.
        shape = PORTAL_SHAPE if (method, path) == ("post", "/v1/dvcqg") else "ErrorBody"
        for status in errors:
            if answers[status].get("content") != {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/{shape}"}}}:
                defects.add(f"{label} {status}: not {shape}")
            if not answers[status].get("description"):
                defects.add(f"{label} {status}: no description")
    return defects


@pytest.mark.parametrize("name", SERVICES)
def test_every_v1_operation_documents_its_inputs_its_answer_and_every_error_in_the_one_shape(
        openapi: dict[str, Any], name: str) -> None:
    assert documentation_defects(openapi[name]) == KNOWN_DEFECTS.get(name, set())


def test_the_operations_that_need_a_key_declare_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    keyed = {
        "intake": ("sourceKey", {("post", "/v1/events"), ("post", "/v1/dvcqg")}),
        "apology": ("officerKey", {(m, p) for m, p, _ in v1_operations(openapi["apology"])}),
    }
    for name, (scheme, operations) in keyed.items():
        document = openapi[name]
        assert document["components"]["securitySchemes"][scheme]["type"] == "http"
        assert document["components"]["securitySchemes"][scheme]["scheme"] == "bearer"
        for method, path, operation in v1_operations(document):
            needs_key = (method, path) in operations
            assert ({scheme: []} in operation.get("security", [])) is needs_key, (name, method, path)
            assert ("401" in operation["responses"]) is needs_key, (name, method, path)
    # Issuing takes the bearer key only: a cookie could be sent by another site's form.
    issue = openapi["apology"]["paths"]["/v1/apologies/{apology_id}/issue"]["post"]
    assert issue["security"] == [{"officerKey": []}]
    for name in ("deadline", "metrics"):  # open reads: nothing claims a key
        assert all("security" not in op for _, _, op in v1_operations(openapi[name])), name


# ---- AsyncAPI ----------------------------------------------------------------------------------------------

def operations_of(document: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(action, topic) -> the contract models one message of it may be."""
    found: dict[tuple[str, str], set[str]] = {}
    for operation in document["operations"].values():
        channel = resolve(document, operation["channel"]["$ref"])
        for message_ref in operation["messages"]:
            payload = deref(document, message_ref)["payload"]
            schema = deref(document, payload)
            assert schema.get("type") != "array", (channel["address"], schema)  # one message is one event
            if "oneOf" in schema:
                names = {ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]}
            else:
                names = {payload["$ref"].rsplit("/", 1)[1]}  # the model itself (a tick)
            for model in names:  # each a real schema of the contract, with its fields
                assert document["components"]["schemas"][model]["properties"], model
            found.setdefault((operation["action"], channel["address"]), set()).update(names)
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_the_asyncapi_document_lists_what_the_service_consumes_and_publishes_with_the_contract_models(
        asyncapi: dict[str, Any], services: dict[str, Running], name: str) -> None:
    document = asyncapi[name]
    topics = services[name].settings.topics
    dossier, deadline, apology = models(DossierEvent), models(DeadlineEvent), models(ApologyEvent)
    expected = {
        "intake": {("send", topics.dossier_events): dossier},
        "deadline": {("receive", topics.dossier_events): dossier, ("receive", topics.deadline_ticks): {"Tick"},
                     ("send", topics.deadline_events): deadline, ("send", topics.deadline_ticks): {"Tick"}},
        "apology": {("receive", topics.dossier_events): dossier, ("receive", topics.deadline_events): deadline,
                    ("send", topics.apology_events): apology},
        "metrics": {("receive", topics.dossier_events): dossier, ("receive", topics.deadline_events): deadline,
                    ("receive", topics.apology_events): apology},
    }[name]

    assert document["asyncapi"] == "3.0.0"
    assert operations_of(document) == expected
    assert not any("EmptyPayload" in schema for schema in document["components"]["schemas"])


async def test_the_asyncapi_document_is_read_only(fresh_apps: dict[str, Any], services: dict[str, Running]) -> None:
    """FastStream's docs router would also take `POST /asyncapi/try` and publish what it is sent to any topic,
    without a key: none of the services has that route, started or not."""
    for name, service in services.items():
        page = await get(fresh_apps[name], "/asyncapi")
        tried = await service.client.post("/asyncapi/try", json={
            "channelName": service.settings.topics.dossier_events, "message": {"message": {"type": "x"}},
            "options": {"sendToRealBroker": True}})
        assert page.status_code == 200 and "AsyncApiStandalone" in page.text, name
        assert "AsyncApiTryItPlugin" not in page.text, name
        assert tried.status_code == 404, name


# ---- one error shape ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    service: str
    label: str
    method: str
    path: str
    status: int
    field: str | None = None
    # (method, path template) when the request names a documented operation: the status must be documented
    operation: tuple[str, str] | None = None
    keyed: bool = True  # sent with the service's key
    kwargs: dict[str, Any] | None = None


def _issue(status: int, label: str, apology_id: str = LETTER, field: str | None = None, keyed: bool = True,
           **kwargs: Any) -> Refusal:
    return Refusal("apology", label, "POST", f"/v1/apologies/{apology_id}/issue", status, field,
                   ("post", "/v1/apologies/{apology_id}/issue"), keyed, kwargs)


def _json(body: bytes) -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": "application/json"}}


def _intake_events(body: Any, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": json.dumps(body).encode(), "headers": {"content-type": content_type}}


OTHER_SOURCE_EVENT = intake_kit.resolved() | {"source": intake_kit.OTHER_SOURCE}
ECHOING = pytest.mark.xfail(strict=True, reason="the reason repeats the input: see the report")
OVERFLOWS = pytest.mark.xfail(strict=True, reason="metrics answers 500 (OverflowError): see the report")

REFUSALS = [
    # intake
    Refusal("intake", "no key", "POST", "/v1/events", 401, None, ("post", "/v1/events"), False,
            _intake_events(intake_kit.resolved())),
    Refusal("intake", "another source's event", "POST", "/v1/events", 403, "source", ("post", "/v1/events"),
            kwargs=_intake_events([OTHER_SOURCE_EVENT])),
    Refusal("intake", "unknown schema", "GET", f"/v1/schemas/{ECHO}", 404, "event_type",
            ("get", "/v1/schemas/{event_type}")),
    Refusal("intake", "unknown path", "GET", f"/v2/{ECHO}", 404),
    Refusal("intake", "wrong method", "GET", "/v1/events", 405),
    Refusal("intake", "too many events", "POST", "/v1/events", 413, None, ("post", "/v1/events"),
            kwargs=_intake_events([intake_kit.resolved(f"D-{i}") for i in range(1001)])),
    Refusal("intake", "not JSON", "POST", "/v1/events", 415, None, ("post", "/v1/events"),
            kwargs=_intake_events(intake_kit.resolved(), "text/plain")),
    Refusal("intake", "invalid event", "POST", "/v1/events", 422, "schema_version", ("post", "/v1/events"),
            kwargs=_intake_events(intake_kit.resolved() | {"schema_version": ECHO})),
    Refusal("intake", "malformed JSON", "POST", "/v1/events", 422, None, ("post", "/v1/events"),
            kwargs=_json(b'{"' + ECHO.encode())),
    Refusal("intake", "page too big", "GET", f"/v1/schemas?page_size={MAX_PAGE_SIZE + 1}", 422, "page_size",
            ("get", "/v1/schemas")),
    # deadline
    Refusal("deadline", "unknown dossier", "GET", f"/v1/dossiers/{ECHO}", 404, "dossier_id",
            ("get", "/v1/dossiers/{dossier_id}")),
    Refusal("deadline", "unknown path", "GET", f"/v2/{ECHO}", 404),
    Refusal("deadline", "wrong method", "POST", "/v1/dossiers", 405, kwargs=_json(b"{}")),
    Refusal("deadline", "wrong method on a dossier", "DELETE", "/v1/dossiers/D-1", 405),
    Refusal("deadline", "page too big", "GET", f"/v1/dossiers?page_size={MAX_PAGE_SIZE + 1}", 422, "page_size",
            ("get", "/v1/dossiers")),
    Refusal("deadline", "page 2**62", "GET", f"/v1/dossiers?page={2**62}", 422, "page", ("get", "/v1/dossiers")),
    Refusal("deadline", "page 0", "GET", "/v1/dossiers?page=0", 422, "page", ("get", "/v1/dossiers")),
    Refusal("deadline", "unknown state", "GET", f"/v1/dossiers?state={ECHO}", 422, "state", ("get", "/v1/dossiers")),
    Refusal("deadline", "id too long", "GET", f"/v1/dossiers/{ECHO * 6}", 422, "dossier_id",
            ("get", "/v1/dossiers/{dossier_id}")),
    # apology
    Refusal("apology", "no key", "GET", "/v1/apologies", 401, None, ("get", "/v1/apologies"), False),
    Refusal("apology", "a wrong key", "GET", f"/v1/apologies/{LETTER}", 401, None, ("get", "/v1/apologies/{apology_id}"),
            False, {"headers": {"Authorization": f"Bearer {ECHO}"}}),
    _issue(401, "issuing without a bearer key", keyed=False, json={"reason": "x", "new_due_at": "2027-03-16T10:00:00+07:00"}),
    Refusal("apology", "another agency's list", "GET", "/v1/apologies?agency=000.00.15.H10", 403, "agency",
            ("get", "/v1/apologies")),
    Refusal("apology", "another agency's letter", "GET", f"/v1/apologies/{ANOTHER_AGENCYS_LETTER}.docx", 403, None,
            ("get", "/v1/apologies/{apology_id}.docx")),
    Refusal("apology", "unknown letter", "GET", f"/v1/apologies/{ECHO}", 404, None, ("get", "/v1/apologies/{apology_id}")),
    Refusal("apology", "a dossier without letters", "GET", f"/v1/dossiers/{ECHO}/apologies", 404, None,
            ("get", "/v1/dossiers/{dossier_id}/apologies")),
    Refusal("apology", "unknown path", "GET", f"/v2/{ECHO}", 404),
    Refusal("apology", "wrong method", "DELETE", f"/v1/apologies/{LETTER}", 405),
    _issue(409, "issuing a cancelled draft", CANCELLED_LETTER,
           json={"reason": "Chờ xác minh", "new_due_at": "2027-03-16T10:00:00+07:00"}),
    Refusal("apology", "a letter before its receipt", "GET", f"/v1/apologies/{LETTER}.docx", 409, None,
            ("get", "/v1/apologies/{apology_id}.docx")),
    _issue(413, "a body over 64 KiB", **_json(json.dumps({"reason": ECHO * 10_000}).encode())),
    _issue(415, "a form instead of JSON", data={"reason": ECHO, "new_due_at": "2027-03-16T10:00:00+07:00"}),
    _issue(422, "an instant that is not one", field="new_due_at", json={"reason": "x", "new_due_at": ECHO}),
    _issue(422, "an unknown field", field=ECHO, json={"reason": "x", "new_due_at": "2027-03-16T10:00:00+07:00",
                                                      ECHO: 1}),
    _issue(422, "a reason over 2000 characters", field="reason",
           json={"reason": ECHO * 300, "new_due_at": "2027-03-16T10:00:00+07:00"}),
    _issue(422, "the year 9999 west of UTC", field="new_due_at",
           json={"reason": "x", "new_due_at": "9999-12-31T23:59:59-12:00"}),
    _issue(422, "malformed JSON", **_json(b'{"reason": "' + ECHO.encode())),
    _issue(422, "1000-deep JSON", **_json(b"[" * 1000 + b"]" * 1000)),
    Refusal("apology", "page 2**62", "GET", f"/v1/apologies?page={2**62}", 422, "page", ("get", "/v1/apologies")),
    # metrics
    Refusal("metrics", "unknown path", "GET", f"/v2/{ECHO}", 404),
    Refusal("metrics", "wrong method", "POST", "/v1/indices", 405),
    Refusal("metrics", "no period", "GET", "/v1/indices", 422, "from", ("get", "/v1/indices")),
    Refusal("metrics", "not a date", "GET", f"/v1/indices?from={ECHO}&to=2026-01-31", 422, "from",
            ("get", "/v1/indices")),
    Refusal("metrics", "not an instant", "GET", f"/v1/indices?from=2026-01-01&to=2026-01-31&until={ECHO}", 422,
            "until", ("get", "/v1/indices")),
    # A period or an instant before any event can be (events.md, Bounds: from 2000): a 500 today (OverflowError
    # binding 0001-01-01T00:00+07:00 as UTC); to be refused like any bad parameter (see the report).
    Refusal("metrics", "a period from year 1", "GET", "/v1/indices?from=0001-01-01&to=0001-01-31", 422,
                         "from", ("get", "/v1/indices")),
    Refusal("metrics", "an instant in year 1", "GET",
                         "/v1/indices?from=2026-01-01&to=2026-01-31&until=0001-01-01T00:00:00%2B14:00", 422,
                         "until", ("get", "/v1/indices")),
    Refusal("metrics", "unknown format", "GET", f"/v1/indices?from=2026-01-01&to=2026-01-31&format={ECHO}",
                         422, "format", ("get", "/v1/indices")),
    Refusal("metrics", "unknown grouping", "GET",
                         f"/v1/indices?from=2026-01-01&to=2026-01-31&group_by={ECHO}", 422, "group_by",
                         ("get", "/v1/indices")),
]


def _id(refusal: Any) -> str:
    return f"{refusal.service}-{refusal.status}-{refusal.label.replace(' ', '-')}"


def assert_one_error_shape(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/json", response.headers["content-type"]
    body = response.json()
    assert list(body) == ["errors"] and body["errors"], body
    for problem in body["errors"]:
        assert set(problem) <= {"index", "field", "reason"}, problem
        reason = problem["reason"]
        assert isinstance(reason, str) and reason.strip(), problem
        assert not reason.startswith(("Value error", "Assertion failed")), problem
        assert ECHO not in reason, problem
    return body["errors"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[_id(getattr(r, "values", [r])[0]) for r in REFUSALS])
async def test_every_refusal_is_the_one_error_shape_with_a_plain_reason_and_a_documented_status(
        services: dict[str, Running], openapi: dict[str, Any], refusal: Refusal) -> None:
    service = services[refusal.service]
    kwargs = dict(refusal.kwargs or {})
    headers = {**(service.auth if refusal.keyed else {}), **kwargs.pop("headers", {})}

    response = await service.client.request(refusal.method, refusal.path, headers=headers, **kwargs)

    assert response.status_code == refusal.status, response.text
    problems = assert_one_error_shape(response)
    if refusal.field is not None:
        assert refusal.field in {p.get("field") for p in problems}, problems
    if refusal.operation is not None:
        method, path = refusal.operation
        assert str(refusal.status) in openapi[refusal.service]["paths"][path][method]["responses"]
    if refusal.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


# ---- one page shape ----------------------------------------------------------------------------------------

LISTS = [("intake", "/v1/schemas", "#/components/schemas/Page_SchemaLink_"),
         ("deadline", "/v1/dossiers", "#/components/schemas/Page_DossierView_"),
         ("apology", "/v1/apologies", "#/components/schemas/Page_ApologyView_")]


@pytest.mark.parametrize(("name", "path", "page_schema"), LISTS, ids=[n for n, _, _ in LISTS])
async def test_every_list_pages_the_same_way_and_refuses_a_page_size_beyond_the_documented_maximum(
        services: dict[str, Running], openapi: dict[str, Any], name: str, path: str, page_schema: str) -> None:
    service = services[name]

    async def page(**params: Any) -> httpx.Response:
        return await service.client.get(path, params=params, headers=service.auth)

    whole = (await page(page_size=MAX_PAGE_SIZE)).json()
    first, second = (await page(page_size=2)).json(), (await page(page=2, page_size=2)).json()
    beyond = (await page(page=1000, page_size=2)).json()
    too_big, zero = await page(page_size=MAX_PAGE_SIZE + 1), await page(page_size=0)

    total = whole["total"]
    assert total >= 3 and len(whole["items"]) == total  # the documented maximum is taken as asked
    assert set(first) == {"items", "page", "page_size", "total"}
    assert (first["page"], first["page_size"], first["total"]) == (1, 2, total)
    assert first["items"] + second["items"] == whole["items"][:4]
    assert (beyond["items"], beyond["total"]) == ([], total)  # past the end: an empty page, not an error
    assert too_big.status_code == 422 and assert_one_error_shape(too_big)[0]["field"] == "page_size"
    assert zero.status_code == 422 and assert_one_error_shape(zero)[0]["field"] == "page_size"

    document = openapi[name]
    schema = resolve(document, page_schema)
    assert set(schema["properties"]) == set(schema["required"]) == {"items", "page", "page_size", "total"}
    size = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "page_size")
    assert size["schema"]["maximum"] == MAX_PAGE_SIZE


async def test_the_metrics_report_is_csv_by_format_or_by_accept_with_agency_names(metrics: Running) -> None:
    period = {"from": "2026-01-01", "to": "2026-03-31", "group_by": "agency"}

    by_format = await metrics.client.get("/v1/indices", params={**period, "format": "csv"})
    by_accept = await metrics.client.get("/v1/indices", params=period, headers={"Accept": "text/csv"})
    as_json = await metrics.client.get("/v1/indices", params={**period, "format": "json"},
                                       headers={"Accept": "text/csv"})  # the explicit format wins

    assert by_format.status_code == by_accept.status_code == 200
    assert by_format.headers["content-type"] == by_accept.headers["content-type"] == "text/csv; charset=utf-8"
    assert by_format.text == by_accept.text
    header, total, *agencies = by_format.text.splitlines()
    assert header.startswith("group_by,key,name,") and total.startswith("total,,,")
    report = as_json.json()
    assert as_json.headers["content-type"] == "application/json"
    assert [row.split(",")[:3] for row in agencies] == [
        ["agency", code, report["names"]["agency"][code]] for code in report["by_agency"]]
    assert agencies and all(row.split(",")[2] for row in agencies)  # a name beside every code
