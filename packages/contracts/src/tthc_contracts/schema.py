"""The JSON Schema of every event, as committed under `schemas/` and served by intake (`GET /v1/schemas`).

    python -m tthc_contracts.schema [DIR]     (`make schemas`) writes them

Each schema carries the descriptions of events.md, `format: uuid` / `format: date-time`, one example for
a dossier event (from the spec's worked examples, `schemas/examples/dossier-events.json`), and a stable
`$id`: the URN `urn:tthc:schema:v1:<type>`. A URN names the schema without claiming a web address the
project does not own; a deployment serves the same document at `<intake>/v1/schemas/<type>`.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from .derived import APOLOGY_EVENT_MODELS, DEADLINE_EVENT_MODELS, Tick
from .events import DOSSIER_EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"
EXAMPLES_FILE = SCHEMA_DIR / "examples" / "dossier-events.json"
SCHEMA_ID_PREFIX = "urn:tthc:schema:v1:"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# events.md, "Derived events" (their models live in derived.py, whose docstrings are about the code).
DERIVED_DESCRIPTIONS = {
    "deadline.scheduled": "Published by deadline: the dossier's due date and at-risk instant, computed on the "
                          "working calendar, with the basis of the computation (received, supplement_restart, "
                          "resumed, extended, calendar_change).",
    "deadline.at_risk": "Published by deadline: the apology is owed now (1 working day before due).",
    "deadline.overdue": "Published by deadline: the due instant passed and the dossier is still open.",
    "deadline.closed": "Published by deadline: the dossier closed, early, on time or late (late_by_hours in "
                       "office hours).",
    "apology.drafted": "Published by apology: an apology letter (Mẫu 04) was drafted for the agency.",
    "apology.issued": "Published by apology: an officer issued the letter, numbered (e.g. 05/PXL), with the new "
                      "appointment.",
    "apology.cancelled": "Published by apology: a draft is no longer owed (e.g. the dossier closed on time).",
    "deadline.tick": "Published by deadline on its own topic every 30 s of wall time: advances its watermark "
                     "in live operation.",
}


def event_type_of(model: Any) -> str:
    return model.model_fields["type"].annotation.__args__[0]  # type: ignore[no-any-return]


def example_events(path: Path = EXAMPLES_FILE) -> dict[str, dict[str, Any]]:
    """{type: {"summary", "description", "value"}}: one example per dossier event type (an OpenAPI
    Example Object each), as committed."""
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def all_schemas(examples: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """{type: JSON Schema} of every event, generated from the models."""
    examples = example_events() if examples is None else examples
    out: dict[str, dict[str, Any]] = {}
    for model in (*DOSSIER_EVENT_MODELS, *DEADLINE_EVENT_MODELS, *APOLOGY_EVENT_MODELS, Tick):
        name = event_type_of(model)
        schema = {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID_PREFIX + name, **model.model_json_schema()}
        schema["title"] = name
        if name in DERIVED_DESCRIPTIONS:
            schema["description"] = DERIVED_DESCRIPTIONS[name]
        if name in examples:
            schema["examples"] = [examples[name]["value"]]
        out[name] = schema
    return out


@cache
def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """{type: JSON Schema} as committed (what intake serves), read once."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
