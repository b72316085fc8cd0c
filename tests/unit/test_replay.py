"""`tthc replay` reproduces every worked example of the spec, byte-identically on a second run."""

from __future__ import annotations

import json
from datetime import datetime
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


# --- user mistakes: one line on stderr, exit code 2, nothing written (issue 12, item 5) ----------------


def _replay_argv(tmp_path: Path, **change: str | None) -> list[str]:
    example = EXAMPLES[0]
    options = {"--events": str(example.path / "events.jsonl"), "--until": example.args["until"],
               "--from": example.args["from"], "--to": example.args["to"], "--out": str(tmp_path / "out")}
    options.update(change)
    return ["replay"] + [part for key, value in options.items() if value is not None for part in (key, value)]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


MISTAKES = {
    "events file missing": (lambda t: {"--events": str(t / "absent.jsonl")}, "no such file"),
    "events is a folder": (lambda t: {"--events": str(t)}, "is a folder"),
    "events gzip-compressed": (lambda t: {"--events": _write(t / "e.jsonl.gz", b"\x1f\x8b\x08\x00rest")}, "gunzip"),
    "events binary": (lambda t: {"--events": _write(t / "e.bin", bytes(range(256)) * 4)}, "binary file"),
    "events not UTF-8": (lambda t: {"--events": _write(t / "e.jsonl", '{"name": "Hà"}\n'.encode("cp1258"))},
                         "not UTF-8"),
    "until a word": (lambda t: {"--until": "tomorrow"}, "2026-04-01T00:00:00+07:00"),
    "until a day": (lambda t: {"--until": "2026-04-01"}, "needs a time and a UTC offset"),
    "until without offset": (lambda t: {"--until": "2026-04-01T00:00:00"}, "needs a time and a UTC offset"),
    "from no such day": (lambda t: {"--from": "2026-02-30"}, "not a day of the calendar"),
    "from dd/mm/yyyy": (lambda t: {"--from": "01/02/2026"}, "YYYY-MM-DD"),
    "from after to": (lambda t: {"--from": "2026-03-31", "--to": "2026-01-01"}, "is after --to"),
    "from without to": (lambda t: {"--to": None}, "go together"),
    "out is a file": (lambda t: {"--out": _write(t / "taken", b"x")}, "is a file"),
    "calendar missing": (lambda t: {"--calendar": str(t / "absent.yaml")}, "--calendar"),
    "calendar invalid": (lambda t: {"--calendar": _write(t / "c.yaml", b"office_hours: [[25, 99]]\n  - : :\n")},
                         "--calendar"),
    "until missing": (lambda t: {"--until": None}, "--until"),
    "jobs zero": (lambda t: {"--jobs": "0"}, "--jobs"),
    "jobs a word": (lambda t: {"--jobs": "two"}, "--jobs"),
}


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_a_mistake_is_one_line_and_exit_code_2(mistake, tmp_path, capsys):
    change, says = MISTAKES[mistake]
    try:
        code = main(_replay_argv(tmp_path, **change(tmp_path)))
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_line_that_is_not_utf8_after_the_start_is_reported_like_any_invalid_line(tmp_path, capsys):
    example = EXAMPLES[0]
    lines = [line.encode() for line in example.event_lines()]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines[:1] + [b"x" * 70_000, '{"t": "Hà"}'.encode("cp1258")] + lines[1:]))
    assert main(_replay_argv(tmp_path, **{"--events": str(events)})) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 2: not valid JSON") and err[1] == "line 3: not UTF-8 text (byte 9)"


def test_windows_line_ends_and_byte_order_mark_read_like_plain_lines(tmp_path):
    example = EXAMPLES[-1]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(example.event_lines()).encode("utf-8") + b"\r\n")
    argv = ["replay", "--until", example.args["until"], "--from", example.args["from"], "--to", example.args["to"]]
    assert main(argv + ["--events", str(events), "--out", str(tmp_path / "crlf")]) == 0
    main(argv + ["--events", str(example.path / "events.jsonl"), "--out", str(tmp_path / "lf")])
    for name in ("dossiers.jsonl", "apologies.jsonl", "indices.json"):
        assert (tmp_path / "crlf" / name).read_bytes() == (tmp_path / "lf" / name).read_bytes()


def test_indices_are_written_for_the_year_of_until_without_from_and_to(tmp_path):
    example = EXAMPLES[0]  # until 2026-03-01
    assert main(_replay_argv(tmp_path, **{"--from": None, "--to": None})) == 0
    by_default = json.loads((tmp_path / "out" / "indices.json").read_text(encoding="utf-8"))
    assert (by_default["from"], by_default["to"]) == ("2026-01-01", "2026-12-31")
    main(_replay_argv(tmp_path, **{"--from": "2026-01-01", "--to": "2026-12-31", "--out": str(tmp_path / "year")}))
    assert by_default == json.loads((tmp_path / "year" / "indices.json").read_text(encoding="utf-8"))
    assert by_default["total"]["received"] == 1 and example.args["until"].startswith("2026-03-01")


def test_until_at_midnight_of_new_year_takes_the_year_that_ended():
    from tthc_adapters.replay import default_period

    period = default_period(datetime.fromisoformat("2026-01-01T00:00:00+07:00"))
    assert (period.start.isoformat(), period.end.isoformat()) == ("2025-01-01", "2025-12-31")


# --- no letters, progress, several processes ----------------------------------------------------------


def test_no_letters_lists_the_drafts_without_files(tmp_path):
    example = EXAMPLES[1]  # two drafts
    assert run_replay(example, tmp_path / "with") == 0
    argv = _replay_argv(tmp_path, **{"--events": str(example.path / "events.jsonl"), "--until": example.args["until"],
                                     "--from": example.args["from"], "--to": example.args["to"],
                                     "--out": str(tmp_path / "without")})
    assert main(argv + ["--no-letters"]) == 0
    with_rows, without_rows = read_jsonl(tmp_path / "with" / "apologies.jsonl"), read_jsonl(
        tmp_path / "without" / "apologies.jsonl")
    assert len(without_rows) == 2 and all(r["file"] is None for r in without_rows)
    assert [dict(r, file=None) for r in with_rows] == without_rows
    assert not (tmp_path / "without" / "apologies").exists()
    for name in ("dossiers.jsonl", "indices.json"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes()


def test_progress_is_said_on_long_runs_only():
    import io

    from tthc_adapters.replay import Progress

    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, every_s=5.0, clock=lambda: now[0])
    for t in (1.0, 4.9):
        now[0] = t
        progress(lambda: f"at {now[0]}")
    assert stream.getvalue() == ""  # a short run says nothing
    for t in (5.0, 6.0, 10.5):
        now[0] = t
        progress(lambda: f"at {now[0]}")
    assert stream.getvalue().splitlines() == ["tthc replay: at 5.0", "tthc replay: at 10.5"]


def test_progress_lines_count_events_dossiers_and_letters(tmp_path, capsys, monkeypatch):
    import tthc_adapters.replay as adapter

    monkeypatch.setattr(adapter, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(adapter, "PART_BYTES", 1024)  # several parts: a line after each
    assert main(_replay_argv(tmp_path, **{"--events": str(EXAMPLES[-1].path / "events.jsonl"), "--jobs": "1"})) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tthc replay:")]
    assert progress and "events read" in progress[-1] and "dossiers folded" in progress[-1]
    assert "letters written" in progress[-1]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_several_processes_and_parts_give_the_same_files_as_one(example, tmp_path, monkeypatch):
    import tthc_adapters.replay as adapter

    run_replay(example, tmp_path / "one")
    monkeypatch.setattr(adapter, "PART_BYTES", 512)  # one part per dossier or so
    argv = ["replay", "--events", str(example.path / "events.jsonl"), "--until", example.args["until"],
            "--from", example.args["from"], "--to", example.args["to"], "--out", str(tmp_path / "many"),
            "--jobs", "2"]
    main(argv)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "many") for p in (tmp_path / "many").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "many" / rel).read_bytes(), rel
