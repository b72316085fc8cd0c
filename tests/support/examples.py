"""The spec's worked examples (../shared/spec/examples), as tests read them."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

SPEC_DIR = Path(os.environ.get("TTHC_SPEC_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "spec"))
EXAMPLES_DIR = SPEC_DIR / "examples"


@dataclass(frozen=True)
class Example:
    name: str
    path: Path

    @property
    def args(self) -> dict[str, str]:
        readme = (self.path / "README.md").read_text(encoding="utf-8")
        return dict(re.findall(r"--(until|from|to) (\S+)", readme))

    def event_lines(self) -> list[str]:
        return [l for l in (self.path / "events.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]

    def events(self) -> list[dict]:
        return [json.loads(l) for l in self.event_lines()]

    def expected_dossiers(self) -> list[dict]:
        return [json.loads(l) for l in (self.path / "expected-dossiers.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]

    def expected_apologies(self) -> list[dict]:
        return [json.loads(l) for l in (self.path / "expected-apologies.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]

    def expected_indices(self) -> dict:
        return json.loads((self.path / "expected-indices.json").read_text(encoding="utf-8"))


def examples() -> list[Example]:
    if not EXAMPLES_DIR.is_dir():
        raise RuntimeError(f"the spec's examples are not at {EXAMPLES_DIR} (set TTHC_SPEC_DIR)")
    return [Example(p.name, p) for p in sorted(EXAMPLES_DIR.iterdir()) if p.is_dir()]


def apology_key(row: dict) -> tuple:
    """What an apology row must match; apology_id, proposed_due_at and file are free (README)."""
    return (row["dossier_id"], row["kind"], row["status"], row["agency"], row["due_at"])
