"""`tthc replay` reproduces every worked example of the spec, byte-identically on a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.examples import apology_key, examples
from tthc_adapters.cli import main

EXAMPLES = examples()


def run_replay(example, out: Path, events: Path | None = None) -> int:
    a = example.args
    return main(
        ["replay", "--events", str(events or example.path / "events.jsonl"), "--until", a["until"],
         "--from", a["from"], "--to", a["to"], "--out", str(out)]
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_replay_reproduces_the_example(example, tmp_path):
    assert run_replay(example, tmp_path) == 0
    assert read_jsonl(tmp_path / "dossiers.jsonl") == example.expected_dossiers()
    apologies = read_jsonl(tmp_path / "apologies.jsonl")
    assert sorted(map(apology_key, apologies)) == sorted(map(apology_key, example.expected_apologies()))
    for row in apologies:
        assert (tmp_path / row["file"]).is_file()
    indices = json.loads((tmp_path / "indices.json").read_text(encoding="utf-8"))
    expected = example.expected_indices()
    assert indices["total"] == expected["total"]
    for agency, figures in expected["by_agency"].items():
        assert indices["by_agency"][agency] == figures
    assert set(indices) >= {"from", "to", "total", "by_agency", "by_field", "by_procedure", "by_channel"}


@pytest.mark.parametrize("example", EXAMPLES[-1:], ids=lambda e: e.name)
def test_the_same_input_gives_byte_identical_files(example, tmp_path):
    run_replay(example, tmp_path / "a")
    run_replay(example, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) >= 4
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_invalid_lines_are_reported_with_their_number_and_skipped(tmp_path, capsys):
    example = EXAMPLES[0]
    events = tmp_path / "events.jsonl"
    lines = example.event_lines()
    lines.insert(1, '{"type": "dossier.received", "occurred_at": "2026-02-13T10:00:00"}')
    lines.insert(2, "not json")
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_replay(example, tmp_path / "out", events) == 2
    err = capsys.readouterr().err
    assert "line 2:" in err and "occurred_at" in err and "line 3: not valid JSON" in err
    assert read_jsonl(tmp_path / "out" / "dossiers.jsonl") == example.expected_dossiers()


def test_events_at_or_after_until_are_ignored(tmp_path):
    example = EXAMPLES[0]  # resolved 26/02 15:20; replay until 26/02 12:00 sees it open and at risk
    a = dict(example.args, until="2026-02-26T12:00:00+07:00")
    main(["replay", "--events", str(example.path / "events.jsonl"), "--until", a["until"], "--from", a["from"],
          "--to", a["to"], "--out", str(tmp_path)])
    (row,) = read_jsonl(tmp_path / "dossiers.jsonl")
    assert row["state"] == "at_risk" and row["closed_at"] is None
