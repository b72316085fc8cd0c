"""What a vendor integrating its one-stop software reads of intake: the OpenAPI document (validated, with the
event union as the request body and one example per event type, and the national portal's bodies of
`POST /v1/dvcqg` with their examples), the JSON Schemas it serves, its AsyncAPI document; and a schemathesis run
against that OpenAPI document: no input gets a 5xx.
"""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python import asgi
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tthc_adapters.catalogue_file import load_catalogue
from tthc_contracts.dvcqg import translate
from tthc_contracts.events import DOSSIER_EVENT_TYPES, parse_dossier_event
from tthc_contracts.schema import SCHEMA_DIR
from tthc_intake.app import create_app

from tests.component.test_intake import AUTH, InMemoryPublisher, Intake, make_settings, running_intake
from tests.component.test_intake_dvcqg import CATALOGUE, PAYLOADS
from tests.support.asgi import in_memory_kafka
from tests.support.examples import examples


@pytest.fixture(scope="module")
async def intake(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Intake]:
    settings = make_settings(tmp_path_factory.mktemp("intake"), log_level="WARNING", dvcqg_catalogue=str(CATALOGUE))
    async for running in running_intake(settings):
        yield running


@pytest.fixture(scope="module")
async def openapi(intake: Intake) -> dict[str, Any]:
    response = await intake.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def component_validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for `#/components/schemas/<name>` of an OpenAPI 3.1 document (JSON Schema 2020-12)."""
    registry = Registry().with_resource("urn:intake-openapi", Resource(contents=document, specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:intake-openapi#/components/schemas/{name}"},
                                           registry=registry, format_checker=jsonschema.FormatChecker())


# ---- OpenAPI ------------------------------------------------------------------------------------


def test_the_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    validate_openapi(openapi)
    assert {"/v1/events", "/v1/dvcqg", "/v1/schemas", "/v1/schemas/{event_type}", "/readyz"} <= set(openapi["paths"])


def test_the_request_body_is_one_event_or_an_array_of_up_to_1000(openapi: dict[str, Any]) -> None:
    body = openapi["paths"]["/v1/events"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]

    assert body["required"] is True
    single, array = schema["oneOf"]
    assert single == {"$ref": "#/components/schemas/DossierEvent"}
    assert array["type"] == "array" and array["items"] == single
    assert (array["minItems"], array["maxItems"]) == (1, 1000)
    union = openapi["components"]["schemas"]["DossierEvent"]
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(DOSSIER_EVENT_TYPES)
    received = openapi["components"]["schemas"]["DossierReceived"]
    assert received["properties"]["event_id"]["format"] == "uuid"
    assert received["properties"]["occurred_at"]["format"] == "date-time"


def test_one_example_per_event_type_each_valid_and_taken_from_the_spec(openapi: dict[str, Any]) -> None:
    content = openapi["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    body_schema = component_validator(openapi, "DossierEvent")
    by_type = {name: example["value"] for name, example in content["examples"].items() if name != "batch"}

    assert list(by_type) == list(DOSSIER_EVENT_TYPES)
    for event_type, event in by_type.items():
        assert event["type"] == event_type
        parse_dossier_event(event)  # the contract takes it...
        body_schema.validate(event)  # ...and so does the documented schema
    for event in content["examples"]["batch"]["value"]:
        body_schema.validate(event)
    spec_events = {e["event_id"]: e for ex in examples() for e in ex.events()}
    from_spec = [e for e in by_type.values() if e["event_id"] in spec_events]
    assert len(from_spec) == 9  # the spec's worked examples hold 9 of the 13 types
    assert all(spec_events[e["event_id"]] == e for e in from_spec)


def test_bearer_security_and_every_error_status_are_declared(openapi: dict[str, Any]) -> None:
    post = openapi["paths"]["/v1/events"]["post"]

    assert openapi["components"]["securitySchemes"]["sourceKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "The key of the one-stop system, bound to one `source` (set up with `INTAKE_SOURCE_KEYS`)."}
    assert post["security"] == [{"sourceKey": []}]
    assert {"202", "401", "403", "413", "415", "422", "503"} <= set(post["responses"])
    for status in ("401", "403", "413", "415", "422", "503"):
        assert post["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}, status
    assert "Retry-After" in post["responses"]["503"]["headers"]
    assert post["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Accepted"}


def test_the_dvcqg_body_is_either_service_with_examples_of_the_worked_example(openapi: dict[str, Any]) -> None:
    body = openapi["paths"]["/v1/dvcqg"]["post"]["requestBody"]
    content = body["content"]["application/json"]
    union = openapi["components"]["schemas"]["DvcqgBody"]
    snapshot = openapi["components"]["schemas"]["DvcqgSnapshotBody"]
    item = openapi["components"]["schemas"]["DvcqgHoSo"]

    assert body["required"] is True and content["schema"] == {"$ref": "#/components/schemas/DvcqgBody"}
    assert union["discriminator"]["propertyName"] == "service"
    assert set(union["discriminator"]["mapping"]) == {"DongBoHoSoMC", "CapNhatTienDoHoSoMC"}
    assert (snapshot["properties"]["data"]["minItems"], snapshot["properties"]["data"]["maxItems"]) == (1, 1000)
    assert {"MaHoSo", "TrangThaiHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "DonViXuLy",
            "ChuHoSo"} == set(item["required"])
    assert item["additionalProperties"] is True  # unknown fields are ignored
    validator = component_validator(openapi, "DvcqgBody")
    catalogue = load_catalogue(CATALOGUE)
    services = set()
    for name, example in content["examples"].items():
        value = example["value"]
        assert value in PAYLOADS, name  # a line of docs/dvcqg/payloads.jsonl, as it is
        validator.validate(value)  # the documented schema takes it...
        assert translate(value, catalogue, "motcua-lang-son").errors == []  # ...and so does intake
        services.add(value["service"])
    assert services == {"DongBoHoSoMC", "CapNhatTienDoHoSoMC"}
    # Both instant forms are shown: yyyyMMddHHmmss and ISO 8601 without an offset.
    instants = {item.get("NgayTiepNhan") for example in content["examples"].values()
                for item in example["value"]["data"]}
    assert {"20260302090000", "2026-03-09T08:30:00"} <= instants


def test_the_dvcqg_answers_keep_the_portal_shape_and_every_status_is_documented(openapi: dict[str, Any]) -> None:
    post = openapi["paths"]["/v1/dvcqg"]["post"]
    schemas = openapi["components"]["schemas"]

    assert post["security"] == [{"sourceKey": []}]
    assert post["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DvcqgAccepted"}
    assert {"202", "401", "413", "415", "422", "501", "503"} == set(post["responses"])
    for status in ("401", "413", "415", "422", "501", "503"):
        assert post["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/DvcqgRefusal"}, status
    assert schemas["DvcqgAccepted"]["properties"]["error_code"]["const"] == "0"
    assert schemas["DvcqgRefusal"]["properties"]["error_code"]["const"] == "-1"
    assert set(schemas["DvcqgProblem"]["required"]) == {"index", "field", "reason"}
    assert "not the `{\"errors\"}` shape" in post["description"]
    assert "Retry-After" in post["responses"]["503"]["headers"]


async def test_the_documented_answers_are_the_answers(intake: Intake, openapi: dict[str, Any]) -> None:
    took = await intake.client.post("/v1/dvcqg", json=PAYLOADS[0], headers=AUTH)
    refused = await intake.client.post("/v1/dvcqg", json={"service": "DongBoHoSoMC", "data": [{}]}, headers=AUTH)

    assert took.status_code == 202 and refused.status_code == 422
    component_validator(openapi, "DvcqgAccepted").validate(took.json())
    component_validator(openapi, "DvcqgRefusal").validate(refused.json())


async def test_swagger_ui_reads_the_document(intake: Intake) -> None:
    page = await intake.client.get("/docs")

    assert page.status_code == 200 and "/openapi.json" in page.text


# ---- JSON Schemas ---------------------------------------------------------------------------------


async def test_the_schemas_are_listed_with_links_and_served_as_committed(intake: Intake) -> None:
    listed = (await intake.client.get("/v1/schemas", params={"page_size": 100})).json()

    committed = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMA_DIR.glob("*.json")}
    assert listed["total"] == len(committed) == len(listed["items"])
    assert {item["type"] for item in listed["items"] if item["posted_to_intake"]} == set(DOSSIER_EVENT_TYPES)
    for item in listed["items"]:
        served = await intake.client.get(item["href"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/schema+json"
        assert served.json() == committed[item["type"]]
        assert item["id"] == served.json()["$id"] == f"urn:tthc:schema:v1:{item['type']}"
        assert item["description"]


async def test_the_schema_list_pages_like_every_list(intake: Intake) -> None:
    second = (await intake.client.get("/v1/schemas", params={"page": 2, "page_size": 5})).json()
    too_big = await intake.client.get("/v1/schemas", params={"page_size": 501})

    assert (second["page"], second["page_size"], len(second["items"])) == (2, 5, 5)
    assert too_big.status_code == 422 and too_big.json()["errors"][0]["field"] == "page_size"


async def test_an_unknown_schema_is_404_in_the_error_shape(intake: Intake) -> None:
    response = await intake.client.get("/v1/schemas/dossier.teleported")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"field": "event_type", "reason": (
        "no such event type; GET /v1/schemas lists them")}]}


# ---- AsyncAPI -------------------------------------------------------------------------------------


async def test_the_asyncapi_document_lists_the_published_events_with_their_schema(intake: Intake) -> None:
    document = (await intake.client.get("/asyncapi.json")).json()

    channel = document["channels"]["dossier events"]
    assert channel["address"] == intake.settings.topics.dossier_events
    assert document["operations"]["dossier events"]["action"] == "send"
    [message_ref] = channel["messages"].values()
    message = document["components"]["messages"][message_ref["$ref"].rsplit("/", 1)[1].replace("%20", " ")]
    payload = document["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1].replace("%20", " ")]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in payload["oneOf"]} == {
        "Dossier" + t.removeprefix("dossier.").title().replace("_", "") for t in DOSSIER_EVENT_TYPES}
    assert document["components"]["schemas"]["DossierReceived"]["properties"]["event_id"]["format"] == "uuid"


# ---- no input gets a 5xx (schemathesis) -----------------------------------------------------------


ANSWERS: collections.Counter[int] = collections.Counter()
DVCQG_ANSWERS: collections.Counter[int] = collections.Counter()  # how deep the fuzzing got into POST /v1/dvcqg


@pytest.fixture(scope="module")
def fuzzed_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = make_settings(tmp_path_factory.mktemp("fuzz"), log_level="ERROR", dvcqg_catalogue=str(CATALOGUE))
    app = create_app(settings, publisher=InMemoryPublisher())
    yield schemathesis.openapi.from_asgi("/openapi.json", in_memory_kafka(app))  # starts the app
    asgi.shutdown_lifespans()
    print(f"\nschemathesis against intake: {sum(ANSWERS.values())} requests, answers by status "
          f"{dict(sorted(ANSWERS.items()))}; POST /v1/dvcqg {dict(sorted(DVCQG_ANSWERS.items()))}")


# At most 75 generated cases per operation and mode, each sent with and without the key: about 3,000 requests
# in some 30 seconds.
FUZZ = settings(max_examples=75, deadline=None, suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate], derandomize=True, database=None)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(fuzzed_schema: Any, mode: GenerationMode) -> None:
    """Every operation of the OpenAPI document, with inputs that fit it (positive) and that do not (negative),
    with the source key (deep into validation) and without it; the documented examples first."""
    calls: collections.Counter[str] = collections.Counter()

    def call(case: Any) -> None:
        for headers in (AUTH, {}):
            response = case.call(headers=headers)
            calls[case.operation.label] += 1
            ANSWERS[response.status_code] += 1
            if case.operation.label == "POST /v1/dvcqg":
                DVCQG_ANSWERS[response.status_code] += 1
            assert response.status_code < 500, (case.as_curl_command(headers=headers), response.text[:500])

    for result in fuzzed_schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(generation_mode=mode)]
        if mode is GenerationMode.POSITIVE:
            strategies += fuzzed_schema.get_strategies_from_examples(operation)
        for strategy in strategies:
            try:
                FUZZ(given(case=strategy)(call))()
            except Unsatisfiable:
                # Nothing can be wrong with an operation without inputs (GET /healthz), nor with a path
                # parameter that takes any string (GET /v1/schemas/{event_type}): no negative case exists.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls["POST /v1/events"] >= 100 and calls["GET /v1/schemas"] >= 100, calls
    assert calls["POST /v1/dvcqg"] >= 100, calls
