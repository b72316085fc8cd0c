"""The event contract v1: what intake refuses, and the committed JSON Schema of every event."""

import json

import pytest

from tests.support.examples import examples
from tthc_contracts import EventValidationError, parse_dossier_event
from tthc_contracts.schema import SCHEMA_DIR, all_schemas

GOOD = examples()[0].events()[0]


def errors_of(raw) -> dict[str, str]:
    with pytest.raises(EventValidationError) as exc:
        parse_dossier_event(raw)
    return {e.field: e.reason for e in exc.value.errors}


def changed(path: str, value):
    raw = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return raw


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
    errs = errors_of(changed(path, value))
    assert field in errs and words.lower() in errs[field].lower()


def test_unknown_data_fields_are_kept_and_text_is_nfc():
    raw = changed("data.extra_field", {"x": 1})
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
