"""Export the JSON Schema of every event; `python -m tthc_contracts.schema DIR` writes them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .derived import APOLOGY_EVENT_MODELS, DEADLINE_EVENT_MODELS, Tick
from .events import DOSSIER_EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def all_schemas() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for model in (*DOSSIER_EVENT_MODELS, *DEADLINE_EVENT_MODELS, *APOLOGY_EVENT_MODELS, Tick):
        name = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        schema = model.model_json_schema()
        schema["$id"] = f"https://tthc.example/schemas/v1/{name}.json"
        out[name] = schema
    return out


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
