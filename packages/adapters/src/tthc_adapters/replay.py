"""The files of `tthc replay` (`spec/interfaces.md`): the event log in; `dossiers.jsonl`,
`apologies.jsonl` with the DOCX letters, and `indices.json` out. The logic is `tthc_core.replay`'s.

The same input gives byte-identical output files.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, TextIO

from tthc_contracts import format_ts
from tthc_core.apology import Draft
from tthc_core.calendar import CalendarBook
from tthc_core.indices import Period
from tthc_core.replay import ReplayResult, read_events, replay

from .calendar_file import CalendarFileError, load_calendar


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_outputs(result: ReplayResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "dossiers.jsonl").write_text(_jsonl(d.row() for d in result.dossiers), encoding="utf-8")
    drafts = sorted(result.drafts, key=lambda d: (d.dossier_id, format_ts(d.due_at), d.kind))
    files = write_letters(drafts, result, out)
    (out / "apologies.jsonl").write_text(_jsonl(d.row(files.get(d.apology_id)) for d in drafts), encoding="utf-8")
    if result.indices is not None:
        (out / "indices.json").write_text(
            json.dumps(result.indices, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def write_letters(drafts: list[Draft], result: ReplayResult, out: Path) -> dict[str, str]:
    """Render each draft as a DOCX under `out/apologies/`; returns apology_id -> path relative to `out`."""
    from tthc_core.letter import letter_for_draft, render_letter

    folder = out / "apologies"
    folder.mkdir(exist_ok=True)
    by_id = {d.dossier_id: d for d in result.dossiers}
    files: dict[str, str] = {}
    for draft in drafts:
        fields = letter_for_draft(draft, by_id[draft.dossier_id], result.received_events[draft.dossier_id])
        path = folder / f"{draft.apology_id}.docx"
        path.write_bytes(render_letter(fields))
        files[draft.apology_id] = f"apologies/{path.name}"
    return files


def parse_until(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError("--until needs a UTC offset, e.g. 2026-04-01T00:00:00+07:00")
    return ts


def main(args: Any, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr

    try:
        book = CalendarBook(load_calendar(args.calendar))
    except CalendarFileError as exc:
        print(f"calendar refused: {exc}", file=stderr)
        return 2
    until = parse_until(args.until)
    period = None
    if args.from_date or args.to_date:
        if not (args.from_date and args.to_date):
            print("--from and --to go together", file=stderr)
            return 2
        period = Period(date.fromisoformat(args.from_date), date.fromisoformat(args.to_date))
    with open(args.events, encoding="utf-8") as f:
        parsed = read_events(f)
    for problem in parsed.problems:
        print(problem, file=stderr)
    result = replay(parsed.events, book, until, period)
    write_outputs(result, Path(args.out))
    print(
        f"{len(result.dossiers)} dossiers, {len(result.drafts)} apology drafts, "
        f"{parsed.invalid_lines} invalid lines -> {args.out}",
        file=stdout,
    )
    return 2 if parsed.invalid_lines else 0
