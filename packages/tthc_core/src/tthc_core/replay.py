"""`tthc replay`'s logic: the whole pipeline in one process, at event time (`spec/interfaces.md`).

It runs the same pure code as the services: the deadline fold, the apology ledger, the index
formulas. Each dossier is replayed on its own events alone (`replay_dossier`), so a province year can be
replayed a slice of dossiers at a time and on several cores. Pure: the files it reads and writes, and
how it splits the work, are `tthc_adapters.replay`'s business.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from pydantic import ValidationError
from tthc_contracts import EventValidationError, parse_dossier_event
from tthc_contracts.events import dossier_event_adapter

from .apology import ApologyLedger, Draft
from .calendar import CalendarBook
from .deadlines import Dossier, fold
from .indices import Period, Tally, dossier_tally, group_keys, tables


def parse_event_line(line: str | bytes) -> Any:
    """One line of the event log as a typed event; raises ValueError with the reason
    ("not valid JSON (...)" or "field: reason; ...")."""
    try:
        return dossier_event_adapter.validate_json(line)  # the fast path: most lines are valid
    except ValidationError:
        pass
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    try:
        return parse_dossier_event(raw)
    except EventValidationError as exc:
        raise ValueError("; ".join(f"{e.field}: {e.reason}" for e in exc.errors)) from None


@dataclass
class ParsedInput:
    events: list[Any] = field(default_factory=list)
    # One text per invalid line: "line N: field: reason"
    problems: list[str] = field(default_factory=list)

    @property
    def invalid_lines(self) -> int:
        return len(self.problems)


def read_events(lines: Iterable[str]) -> ParsedInput:
    """Parse one event per line; an invalid line is noted with its number and skipped."""
    parsed = ParsedInput()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.events.append(parse_event_line(line))
        except ValueError as exc:
            parsed.problems.append(f"line {number}: {exc}")
    return parsed


def group_by_dossier(events: Iterable[Any]) -> dict[str, list[Any]]:
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        by_dossier[ev.dossier_id].append(ev)
    return by_dossier


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


@dataclass
class DossierReplay:
    dossier: Dossier  # as it stands at `until`
    received: Any  # its winning dossier.received (what the letters need)
    drafts: list[Draft]
    # what it adds to the period's figures, under its group keys; None: not handled in the period
    figures: tuple[tuple[str, str, str, str], Tally] | None


def replay_dossier(
    events: list[Any], book: CalendarBook, until: datetime, period: Period | None = None
) -> DossierReplay | None:
    """One dossier from all its events (any order): None when it was never received before `until`
    (submitted, refused, or its receipt is not in the input)."""
    events = [e for e in events if e.occurred_at < until]
    if not events:
        return None
    state, derived = fold(events, book, until)
    if state is None:
        return None
    received = min((e for e in events if e.type == "dossier.received"), key=lambda e: (e.occurred_at, e.event_id))
    figures = None
    if period is not None:
        cut = period.cut(until)
        # The period closed before the end of the input: the dossier as it stood then.
        at_cut = state if cut >= until else fold(events, book, cut)[0]
        if at_cut is not None and (tally := dossier_tally(at_cut, period, cut, book)) is not None:
            figures = (group_keys(at_cut), tally)
    return DossierReplay(state, received, run_apologies(book, events, derived).drafts, figures)


def add_tally(tallies: dict[tuple[str, str, str, str], Tally], keys: tuple[str, str, str, str], tally: Tally) -> None:
    tallies.setdefault(keys, Tally())
    tallies[keys] += tally


@dataclass
class ReplayResult:
    dossiers: list[Dossier]
    drafts: list[Draft]
    indices: dict[str, Any] | None
    received_events: dict[str, Any]  # dossier_id -> its winning dossier.received (for letters)


def replay(
    events: list[Any], book: CalendarBook, until: datetime, period: Period | None
) -> ReplayResult:
    """Every dossier of `events`, in dossier order, and the period's figures."""
    by_dossier = group_by_dossier(events)
    dossiers: list[Dossier] = []
    drafts: list[Draft] = []
    received: dict[str, Any] = {}
    tallies: dict[tuple[str, str, str, str], Tally] = {}
    for dossier_id in sorted(by_dossier):
        one = replay_dossier(by_dossier[dossier_id], book, until, period)
        if one is None:
            continue
        dossiers.append(one.dossier)
        received[dossier_id] = one.received
        drafts.extend(one.drafts)
        if one.figures is not None:
            add_tally(tallies, *one.figures)
    indices = tables(tallies, period) if period is not None else None
    return ReplayResult(dossiers, drafts, indices, received)
