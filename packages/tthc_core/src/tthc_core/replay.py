"""`tthc replay`: the whole pipeline in one process, at event time (`spec/interfaces.md`).

It runs the same pure code as the services: the deadline fold, the apology ledger, the index
formulas. The same input gives byte-identical output files.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, TextIO

from tthc_contracts import EventValidationError, format_ts, parse_dossier_event

from .apology import ApologyLedger, Draft
from .calendar import CalendarBook
from .deadlines import Dossier, fold
from .indices import Period, compute_indices


@dataclass
class ParsedInput:
    events: list[Any] = field(default_factory=list)
    invalid_lines: int = 0


def read_events(lines: Iterable[str], errors: TextIO) -> ParsedInput:
    """Parse one event per line; an invalid line is reported with its number and skipped."""
    parsed = ParsedInput()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            print(f"line {number}: not valid JSON ({exc.msg})", file=errors)
            parsed.invalid_lines += 1
            continue
        try:
            parsed.events.append(parse_dossier_event(raw))
        except EventValidationError as exc:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)
            print(f"line {number}: {reasons}", file=errors)
            parsed.invalid_lines += 1
    return parsed


def group_by_dossier(events: Iterable[Any]) -> dict[str, list[Any]]:
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        by_dossier[ev.dossier_id].append(ev)
    return by_dossier


@dataclass
class ReplayResult:
    dossiers: list[Dossier]
    drafts: list[Draft]
    indices: dict[str, Any] | None
    received_events: dict[str, Any]  # dossier_id -> its winning dossier.received (for letters)


def run_apologies(book: CalendarBook, dossier_events: list[Any], derived: list[Any]) -> ApologyLedger:
    """Feed one dossier's derived deadline events and its extensions to the apology rules, in time order."""
    ledger = ApologyLedger(dossier_events[0].dossier_id)
    extended = [e for e in dossier_events if e.type == "dossier.extended"]
    # Derived moments at an instant happen before the dossier's own events of that instant.
    timeline = sorted(
        [(e.occurred_at, 0, i, e) for i, e in enumerate(derived)]
        + [(e.occurred_at, 1, i, e) for i, e in enumerate(sorted(extended, key=lambda e: e.event_id))],
        key=lambda x: x[:3],
    )
    seen_extensions: set[tuple[str, str]] = set()
    for _, is_dossier_event, _, ev in timeline:
        if is_dossier_event:
            if (ev.source, ev.event_id) not in seen_extensions:
                seen_extensions.add((ev.source, ev.event_id))
                ledger.on_extended(ev)
        else:
            ledger.on_deadline_event(book, ev)
    return ledger


def replay(
    events: list[Any], book: CalendarBook, until: datetime, period: Period | None
) -> ReplayResult:
    events = [e for e in events if e.occurred_at < until]
    by_dossier = group_by_dossier(events)
    dossiers: list[Dossier] = []
    drafts: list[Draft] = []
    received: dict[str, Any] = {}
    for dossier_id in sorted(by_dossier):
        evs = by_dossier[dossier_id]
        state, derived = fold(evs, book, until)
        if state is None:
            continue  # never received (submitted, refused, or its receipt is not in the input)
        dossiers.append(state)
        received[dossier_id] = min(
            (e for e in evs if e.type == "dossier.received"), key=lambda e: (e.occurred_at, e.event_id)
        )
        drafts.extend(run_apologies(book, evs, derived).drafts)

    indices = None
    if period is not None:
        cut = period.cut(until)
        at_cut = dossiers
        if cut < until:  # the period closed before the end of the input: take each dossier as it stood then
            at_cut = [s for evs in by_dossier.values() if (s := fold(evs, book, cut)[0]) is not None]
        indices = compute_indices(at_cut, period, cut, book)
    return ReplayResult(dossiers, drafts, indices, received)


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_outputs(result: ReplayResult, out: Path, book: CalendarBook) -> None:
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
    from .letter_fields import letter_for_draft
    from .letter.render import render_letter
    from .docx_stable import stable_docx

    folder = out / "apologies"
    folder.mkdir(exist_ok=True)
    by_id = {d.dossier_id: d for d in result.dossiers}
    files: dict[str, str] = {}
    for draft in drafts:
        fields = letter_for_draft(draft, by_id[draft.dossier_id], result.received_events[draft.dossier_id])
        path = folder / f"{draft.apology_id}.docx"
        path.write_bytes(stable_docx(render_letter(fields)))
        files[draft.apology_id] = f"apologies/{path.name}"
    return files


def parse_until(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError("--until needs a UTC offset, e.g. 2026-04-01T00:00:00+07:00")
    return ts


def main(args: Any, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    from .calendar_config import CalendarFileError, load_calendar

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
        parsed = read_events(f, stderr)
    result = replay(parsed.events, book, until, period)
    write_outputs(result, Path(args.out), book)
    print(
        f"{len(result.dossiers)} dossiers, {len(result.drafts)} apology drafts, "
        f"{parsed.invalid_lines} invalid lines -> {args.out}",
        file=stdout,
    )
    return 2 if parsed.invalid_lines else 0
