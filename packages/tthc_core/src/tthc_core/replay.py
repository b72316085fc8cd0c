"""`tthc replay`'s logic: the whole pipeline in one process, at event time (`spec/interfaces.md`).

It runs the same pure code as the services: the deadline fold, the apology ledger, the index
formulas. Pure: the files it reads and writes are `tthc_adapters.replay`'s business.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from tthc_contracts import EventValidationError, parse_dossier_event

from .apology import ApologyLedger, Draft
from .calendar import CalendarBook
from .deadlines import Dossier, fold
from .indices import Period, compute_indices


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
            raw = json.loads(line)
        except ValueError as exc:
            parsed.problems.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        try:
            parsed.events.append(parse_dossier_event(raw))
        except EventValidationError as exc:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)
            parsed.problems.append(f"line {number}: {reasons}")
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
