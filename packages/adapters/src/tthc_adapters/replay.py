"""The files of `tthc replay` (`spec/interfaces.md`): the event log in; `dossiers.jsonl`,
`apologies.jsonl` with the DOCX letters, and `indices.json` out. The logic is `tthc_core.replay`'s.

A province year (millions of events) does not fit in memory as parsed events, and its letters take most of
the time. So the log is read once and split by dossier into parts of a few megabytes (files in a work folder
inside OUT, removed at the end); each part is parsed, replayed and its letters written by one of a pool of
processes (one per core), which returns its figure rows and leaves its rows, sorted, in the work folder;
the rows are then merged into the output files in the spec's order. The same input gives byte-identical
output files, whatever the number of processes.

Every mistake of the user (a file that is missing, not an event log or a file where a folder is expected,
an instant or a day that cannot be read) is one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Callable, Iterator, TextIO

from tthc_contracts import format_ts
from tthc_contracts.timefmt import to_vn
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import CalendarConfig
from tthc_core.indices import Period, Tally, tables
from tthc_core.replay import add_tally, group_by_dossier, parse_event_line, replay_dossier

from .calendar_file import CalendarFileError, load_calendar

PROGRESS_EVERY_S = 5.0  # a line on stderr at most this often, and none for a run shorter than this
PART_BYTES = 4 << 20  # the log is split into parts of about this size (each is replayed on its own)
MAX_PARTS = 256  # files open at once while splitting
_EXAMPLE_INSTANT = "2026-04-01T00:00:00+07:00"


class UsageError(Exception):
    """A mistake of the user: said in one line, exit code 2."""


# --- the command line -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOptions:
    events: Path
    calendar: CalendarConfig
    until: datetime
    period: Period
    out: Path
    letters: bool = True
    jobs: int = 1


def parse_until(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--until {text!r} is not a date and time: write it as {_EXAMPLE_INSTANT}") from None
    if ts.tzinfo is None:
        raise UsageError(f"--until {text!r} needs a time and a UTC offset, e.g. {_EXAMPLE_INSTANT}")
    return ts


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(option: str, text: str) -> date:
    if not _DAY.fullmatch(text):
        raise UsageError(f"{option} {text!r} is not a day: write it as YYYY-MM-DD, e.g. 2026-01-01")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text} is not a day of the calendar ({exc})") from None


def default_period(until: datetime) -> Period:
    """The calendar year of the last instant before `until`, in Vietnam: the year to date."""
    year = to_vn(until - timedelta(microseconds=1)).year
    return Period(date(year, 1, 1), date(year, 12, 31))


def parse_period(from_text: str | None, to_text: str | None, until: datetime) -> Period:
    if from_text is None and to_text is None:
        return default_period(until)
    if from_text is None or to_text is None:
        raise UsageError("--from and --to go together (leave both out for the year of --until)")
    start, end = parse_day("--from", from_text), parse_day("--to", to_text)
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}: the period would be empty")
    return Period(start, end)


def check_events_file(path: Path) -> None:
    """Refuse what cannot be an event log (missing, a folder, binary) before anything is written."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except FileNotFoundError:
        raise UsageError(f"--events {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--events {path}: is a folder; give the event log file (JSON lines)") from None
    except OSError as exc:
        raise UsageError(f"--events {path}: cannot be read ({exc.strerror})") from None
    if head.startswith(b"\x1f\x8b"):
        raise UsageError(f"--events {path}: is gzip-compressed; decompress it first (gunzip)")
    if head.startswith(b"PK\x03\x04"):
        raise UsageError(f"--events {path}: is a zip archive, not an event log (JSON lines, UTF-8)")
    if b"\x00" in head:
        raise UsageError(f"--events {path}: is a binary file, not an event log (JSON lines, UTF-8)")
    try:
        # a character may be cut at the end of the sample: check whole lines only, when there is one
        (head[: head.rindex(b"\n") + 1] if b"\n" in head else head).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--events {path}: is not UTF-8 text (byte {exc.start + 1}); "
                         "give the event log as JSON lines in UTF-8") from None


def parse_options(args: Any) -> ReplayOptions:
    """The options of `tthc replay`, checked; raises UsageError."""
    until = parse_until(args.until)
    period = parse_period(args.from_date, args.to_date, until)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder (it is created when missing)")
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0))
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: give at least 1")
    try:
        calendar = load_calendar(args.calendar)
    except CalendarFileError as exc:
        raise UsageError(f"--calendar {exc}") from None
    events = Path(args.events)
    check_events_file(events)
    return ReplayOptions(events, calendar, until, period, out, letters=not args.no_letters, jobs=jobs)


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """One line on stderr every few seconds of a long run; nothing for a short one."""

    def __init__(self, stream: TextIO, every_s: float = PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.every_s, self.clock = stream, every_s, clock
        self.last = clock()

    def __call__(self, message: Callable[[], str]) -> None:
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            print(f"tthc replay: {message()}", file=self.stream, flush=True)


# --- splitting the log by dossier ---------------------------------------------------------------------


# The top-level "dossier_id" of a line. In JSON a quote inside a string is escaped, so an unescaped
# `"dossier_id":"` is a key; a line with none or several of them (or escapes in the id) is decoded instead.
_DOSSIER_ID = re.compile(rb'"dossier_id"\s*:\s*"([^"\\]*)"')


def _dossier_id(raw: bytes, line: str) -> bytes | None:
    """The line's dossier id (UTF-8); b"" when it has none (its part reports why); None when it is not JSON."""
    found = _DOSSIER_ID.findall(raw)
    if len(found) == 1:
        return found[0]
    try:
        decoded = json.loads(line)
    except ValueError:
        return None
    value = decoded.get("dossier_id") if isinstance(decoded, dict) else None
    return value.encode("utf-8") if isinstance(value, str) else b""


@dataclass
class Split:
    parts: list[Path]
    lines: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def split_by_dossier(events: Path, work: Path, progress: Progress) -> Split:
    """Write each line of the log, with its number, to the part of its dossier (all of a dossier's events
    in one part); lines that are not UTF-8 or not JSON are noted and left out."""
    count = min(MAX_PARTS, max(1, math.ceil(events.stat().st_size / PART_BYTES)))
    split = Split([work / f"part-{k:03d}.events" for k in range(count)])
    files: list[IO[bytes]] = [open(p, "wb") for p in split.parts]
    try:
        with open(events, "rb") as f:
            for number, raw in enumerate(f, start=1):
                split.lines = number
                if number % 10_000 == 0:
                    progress(lambda: f"{split.lines:,} lines read")
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # the byte order mark some Windows editors put first
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    split.problems.append((number, f"not UTF-8 text (byte {exc.start + 1})"))
                    continue
                if not line.strip():
                    continue
                dossier_id = _dossier_id(raw, line)
                if dossier_id is None:
                    try:
                        parse_event_line(line)
                    except ValueError as exc:  # the reason the core gives for it
                        split.problems.append((number, str(exc)))
                    continue
                files[zlib.crc32(dossier_id) % count].write(b"%d\t%s\n" % (number, raw.rstrip(b"\r\n")))
    finally:
        for f in files:
            f.close()
    return split


# --- replaying one part (in a worker process) -----------------------------------------------------------


@dataclass(frozen=True)
class PartJob:
    calendar: CalendarConfig
    until: datetime
    period: Period
    out: Path
    letters: bool


@dataclass
class PartResult:
    events: int
    dossiers: int
    drafts: int
    letters: int
    problems: list[tuple[int, str]]
    # what the part's dossiers handled in the period add to its figures, by group keys (tallies add up)
    figures: dict[tuple[str, str, str, str], Tally]


_job: PartJob | None = None
_book: CalendarBook | None = None


def _start_worker(job: PartJob) -> None:
    global _job, _book
    _job, _book = job, CalendarBook(job.calendar)


def _sort_key_line(key: Any, row: dict[str, Any]) -> str:
    """A row with its sort key in front (JSON, so it holds no tab), for the merge."""
    return f"{json.dumps(key, ensure_ascii=False)}\t{json.dumps(row, ensure_ascii=False)}\n"


def replay_part(part: Path) -> PartResult:
    """Replay the dossiers of one part: its rows, sorted, next to it; its letters under OUT/apologies/."""
    from tthc_core.letter import letter_for_draft, render_letter

    job, book = _job, _book
    assert job is not None and book is not None, "_start_worker first"
    problems: list[tuple[int, str]] = []
    events = []
    with open(part, encoding="utf-8", newline="\n") as f:  # a CR inside a line is JSON whitespace
        for text in f:
            number, line = text.split("\t", 1)
            try:
                events.append(parse_event_line(line))
            except ValueError as exc:
                problems.append((int(number), str(exc)))
    result = PartResult(len(events), 0, 0, 0, problems, {})
    by_dossier = group_by_dossier(events)
    del events
    dossier_rows, apology_rows = [], []
    for dossier_id in sorted(by_dossier):
        one = replay_dossier(by_dossier.pop(dossier_id), book, job.until, job.period)
        if one is None:
            continue
        result.dossiers += 1
        dossier_rows.append(_sort_key_line(dossier_id, one.dossier.row()))
        if one.figures is not None:
            add_tally(result.figures, *one.figures)
        for draft in one.drafts:
            file = None
            if job.letters:
                file = f"apologies/{draft.apology_id}.docx"
                (job.out / file).write_bytes(render_letter(letter_for_draft(draft, one.dossier, one.received)))
                result.letters += 1
            apology_rows.append((
                (draft.dossier_id, format_ts(draft.due_at), draft.kind), draft.row(file)))
    result.drafts = len(apology_rows)
    apology_rows.sort(key=lambda r: r[0])
    part.with_suffix(".dossiers").write_text("".join(dossier_rows), encoding="utf-8")
    part.with_suffix(".apologies").write_text(
        "".join(_sort_key_line(list(key), row) for key, row in apology_rows), encoding="utf-8")
    part.unlink()  # the part's events are no longer needed
    return result


# --- the whole run ---------------------------------------------------------------------------------


def _merged_rows(files: list[Path]) -> Iterator[str]:
    """The rows of sorted part files, in one sorted order, without their keys."""
    handles = [open(p, encoding="utf-8") for p in files]
    try:
        for line in heapq.merge(*handles, key=lambda line: json.loads(line[: line.index("\t")])):
            yield line[line.index("\t") + 1:]
    finally:
        for h in handles:
            h.close()


@dataclass
class RunFigures:
    events: int = 0
    dossiers: int = 0
    drafts: int = 0
    letters: int = 0
    invalid_lines: int = 0


def run(options: ReplayOptions, stderr: TextIO, progress: Progress) -> RunFigures:
    out = options.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        if options.letters:
            (out / "apologies").mkdir(exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create it ({exc.strerror})") from None
    figures = RunFigures()
    with tempfile.TemporaryDirectory(prefix=".replay-work-", dir=out) as work_dir:
        work = Path(work_dir)
        split = split_by_dossier(options.events, work, progress)
        problems = split.problems
        job = PartJob(options.calendar, options.until, options.period, out, options.letters)
        parts = [p for p in split.parts if p.stat().st_size > 0]
        tallies: dict[tuple[str, str, str, str], Tally] = {}

        def take(result: PartResult) -> None:
            figures.events += result.events
            figures.dossiers += result.dossiers
            figures.drafts += result.drafts
            figures.letters += result.letters
            problems.extend(result.problems)
            for keys, tally in result.figures.items():
                add_tally(tallies, keys, tally)
            progress(lambda: f"{figures.events:,} events read, {figures.dossiers:,} dossiers folded, "
                             f"{figures.letters:,} letters written ({done[0]} of {len(parts)} parts)")

        done = [0]
        if options.jobs == 1 or len(parts) <= 1:
            _start_worker(job)
            for part in parts:
                result = replay_part(part)
                done[0] += 1
                take(result)
        else:
            with ProcessPoolExecutor(min(options.jobs, len(parts)), initializer=_start_worker,
                                     initargs=(job,)) as pool:
                for future in as_completed([pool.submit(replay_part, p) for p in parts]):
                    done[0] += 1
                    take(future.result())

        for number, reason in sorted(problems):
            print(f"line {number}: {reason}", file=stderr)
        figures.invalid_lines = len(problems)
        for name in ("dossiers", "apologies"):
            with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for written, row in enumerate(_merged_rows([p.with_suffix(f".{name}") for p in parts]), 1):
                    f.write(row)
                    if written % 10_000 == 0:
                        progress(lambda: f"{written:,} rows written to {name}.jsonl")
        indices = tables(tallies, options.period)
        (out / "indices.json").write_text(
            json.dumps(indices, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return figures


def main(args: Any, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        options = parse_options(args)
        figures = run(options, stderr, Progress(stderr, PROGRESS_EVERY_S))
    except UsageError as exc:
        print(f"tthc replay: {' '.join(str(exc).split())}", file=stderr)
        return 2
    print(
        f"{figures.dossiers} dossiers, {figures.drafts} apology drafts, "
        f"{figures.invalid_lines} invalid lines -> {options.out}",
        file=stdout,
    )
    return 2 if figures.invalid_lines else 0
