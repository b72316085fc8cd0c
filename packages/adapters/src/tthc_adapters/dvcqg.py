"""`tthc dvcqg`: a file of national-portal request bodies translated offline into v1 events (`spec/dvcqg.md`).

One request body per input line (`DongBoHoSoMC` snapshots and `CapNhatTienDoHoSoMC` progress alike);
progress steps accumulate per dossier across lines, as intake keeps them. The output is one v1 event
per line, each `event_id` once (a snapshot sent again derives the same events), ready for
`tthc replay`. A province converts an export of its history this way. The translation is
`tthc_contracts.dvcqg.translate`, the very function intake's `POST /v1/dvcqg` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from tthc_contracts.dvcqg import ProgressStep, translate

from .catalogue_file import CatalogueError, load_catalogue


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dvcqg",
        help="translate national-portal sync bodies (DongBoHoSoMC, CapNhatTienDoHoSoMC) into v1 events",
        description="Translate a file of DVCQG request bodies (one per line) into v1 events (dvcqg.md).",
    )
    p.add_argument(
        "--in",
        dest="in_path",
        required=True,
        metavar="PAYLOADS.jsonl",
        help="request bodies, one JSON object per line",
    )
    p.add_argument(
        "--catalogue",
        required=True,
        metavar="CATALOGUE.yaml",
        help="procedure catalogue (YAML): MaTTHC -> duration",
    )
    p.add_argument(
        "--source", required=True, help="the sending system, e.g. motcua-lang-son (each event's source)"
    )
    p.add_argument("--out", required=True, metavar="EVENTS.jsonl", help="v1 events, one per line")


def main(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if not 1 <= len(args.source) <= 64:
        print("--source must be 1-64 characters (events.md)", file=stderr)
        return 2
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        print(f"catalogue refused: {exc}", file=stderr)
        return 2
    try:
        with open(args.in_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        print(f"cannot read {args.in_path}: {exc.strerror}", file=stderr)
        return 2
    except UnicodeDecodeError:
        print(f"cannot read {args.in_path}: not UTF-8 text", file=stderr)
        return 2

    steps: dict[str, list[ProgressStep]] = {}  # per MaHoSo, every accepted step so far
    events: dict[str, dict[str, Any]] = {}  # event_id -> event, in order of first derivation
    bodies = refused_lines = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        bodies += 1
        try:
            body = json.loads(line)
        except ValueError as exc:
            print(f"line {number}: not valid JSON ({exc.msg})", file=stderr)
            refused_lines += 1
            continue
        result = translate(body, catalogue, args.source, steps)
        if result.refused:
            refused_lines += 1
            for e in result.errors:
                item = "" if e["index"] is None else f"item {e['index']}: "
                print(f"line {number}: {item}{e['field']}: {e['reason']}", file=stderr)
            continue
        for dossier_id, new in result.new_steps.items():
            steps.setdefault(dossier_id, []).extend(new)
        for event in result.events:
            events.setdefault(event["event_id"], event)
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in events.values())
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror}", file=stderr)
        return 2
    print(
        f"{bodies} request bodies, {len(events)} events, {refused_lines} refused -> {args.out}", file=stdout
    )
    return 2 if refused_lines else 0
