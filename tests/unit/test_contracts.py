"""The event contract v1: what intake refuses, and the committed JSON Schema of every event."""

import json

import pytest

from tests.support.events import changed
from tests.support.examples import examples
from tthc_contracts import EventValidationError, parse_dossier_event
from tthc_contracts.schema import SCHEMA_DIR, all_schemas

GOOD = examples()[0].events()[0]


def errors_of(raw) -> dict[str, str]:
    with pytest.raises(EventValidationError) as exc:
        parse_dossier_event(raw)
    return {e.field: e.reason for e in exc.value.errors}


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        ("occurred_at", "2026-02-13T10:00:00", "occurred_at", "offset"),
        ("type", "dossier.lost", "type", "unknown event type"),
        ("data.duration.value", 0, "data.duration.value", "greater than 0"),
        ("data.duration.unit", "weeks", "data.duration.unit", "working_days"),
        ("dossier_id", "x" * 65, "dossier_id", "at most 64"),
        ("event_id", "not-a-uuid", "event_id", "UUID"),
        ("data.procedure", KeyError, "data.procedure", "required"),
        ("schema_version", 2, "schema_version", "1"),
    ],
)
def test_bad_input_names_the_field_and_the_reason(path, value, field, words):
    errs = errors_of(changed(GOOD, path, value))
    assert field in errs and words.lower() in errs[field].lower()


def test_unknown_data_fields_are_kept_and_text_is_nfc():
    raw = changed(GOOD, "data.extra_field", {"x": 1})
    raw["data"]["applicant"]["name"] = "Nguye\u0302\u0303n"  # decomposed "Nguyễn"
    ev = parse_dossier_event(raw)
    dumped = ev.model_dump(mode="json")
    assert dumped["data"]["extra_field"] == {"x": 1}
    assert ev.data.applicant.name == "Nguy\u1ec5n"


def test_committed_json_schemas_match_the_models():
    schemas = all_schemas()
    on_disk = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == schemas, "run `make schemas` and commit packages/contracts/src/tthc_contracts/schemas/"
    assert {"dossier.received", "deadline.overdue", "apology.issued"} <= set(schemas)


# ---- bounds (events.md, "Bounds") that need no clock ----------------------------------------------------


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        ("occurred_at", "1999-12-31T23:59:59+07:00", "occurred_at", "before 2000"),
        ("occurred_at", "2026-02-13 10:00:00+07:00", "occurred_at", "RFC 3339"),
        ("occurred_at", "2026-02-13T10:00:00+14:01", "occurred_at", "+14:00"),
        ("occurred_at", "9999-12-31T23:59:59-12:00", "occurred_at", "out of range"),
        ("schema_version", True, "schema_version", "integer 1"),
        ("schema_version", 1.0, "schema_version", "integer 1"),
        ("data.duration", {"value": 1e308, "unit": "working_days"}, "data.duration.value", "at most 3650"),
        ("data.appointment_at", "2036-02-13T10:00:01+07:00", "data.appointment_at", "within 10 years"),
        ("data.applicant.name", "x" * 1001, "data.applicant.name", "at most 1000"),
        ("data.extra", {"a": ["x" * 1001]}, "data.extra.a.0", "at most 1000"),
    ],
)
def test_bounds_name_the_field_and_the_reason(path, value, field, words):
    errs = errors_of(changed(GOOD, path, value))
    assert field in errs and words.lower() in errs[field].lower(), errs


def test_the_bounds_accept_their_limits():
    at_limits = changed(GOOD, "data.duration", {"value": 3650, "unit": "calendar_days"})
    at_limits["occurred_at"] = "2026-02-13T10:00:00-14:00"
    at_limits["data"]["appointment_at"] = "2036-02-13T10:00:00-14:00"
    at_limits["data"]["applicant"]["name"] = "x" * 1000

    assert parse_dossier_event(at_limits).data.duration.value == 3650


# ---- committed schemas: what a vendor reads ---------------------------------------------------------


def test_every_schema_has_a_stable_id_descriptions_and_formats():
    schemas = all_schemas()
    for name, schema in schemas.items():
        assert schema["$id"] == f"urn:tthc:schema:v1:{name}"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema.get("description"), name
    received = schemas["dossier.received"]
    assert received["properties"]["event_id"]["format"] == "uuid"
    assert received["properties"]["occurred_at"]["format"] == "date-time"
    assert "2000-01-01" in received["properties"]["occurred_at"]["description"]
    assert received["$defs"]["Duration"]["properties"]["value"]["description"].startswith("statutory duration")


def test_one_example_per_dossier_event_type_valid_and_as_in_the_spec():
    from tthc_contracts.events import DOSSIER_EVENT_TYPES
    from tthc_contracts.schema import example_events

    committed = example_events()
    assert list(committed) == list(DOSSIER_EVENT_TYPES)
    for event_type, example in committed.items():
        assert parse_dossier_event(example["value"]).type == event_type
        assert all_schemas()[event_type]["examples"] == [example["value"]]
    in_spec = {}
    for ex in examples():
        for event in ex.events():
            in_spec.setdefault(event["type"], event)
    for event_type, event in in_spec.items():  # the spec has no example of the other four types
        assert committed[event_type]["value"] == event, event_type


def test_the_committed_schemas_validate_the_examples_as_json_schema():
    import jsonschema

    from tthc_contracts.schema import example_events

    examples_by_type = example_events()
    assert examples_by_type  # one per dossier event type (the test above)
    for event_type, example in examples_by_type.items():
        schema = all_schemas()[event_type]
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        value = example["value"]
        assert [f"{e.json_path}: {e.message}" for e in validator.iter_errors(value)] == [], event_type
        # ...and the schema is no rubber stamp: the example with a local time for occurred_at is refused
        assert not validator.is_valid(changed(value, "occurred_at", "2026-02-13T10:00:00")), event_type
