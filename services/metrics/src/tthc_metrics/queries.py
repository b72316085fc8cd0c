"""Reads for the HTTP report and the gauges: `fn(session, ...) -> data`. Never write.

The figures of a period stand at its cut (indices.md): P1 24:00, or the present when that is earlier.
The present is an explicit `until` when the caller gives one (a report as of an instant, like `tthc
replay --until`), else the service's watermark (the latest event time seen, that instant included).

At a cut after every stored event (the present: a current period, or `until` later than the watermark),
the figures come from the kept counts, in O(groups) and O(open dossiers), never O(dossiers):
- the receipts' and the closes' facts of the period's whole months: the sum of their `metrics_counts` rows
  (`month_counts`); the days of a period that are not whole months (`from=2026-03-15`): the `counted` of
  the dossiers received or closed on them (`range_counts`);
- the open dossiers (every one of them is handled in a period that contains the cut) counted at the cut
  by one grouped query over the instants their open facts change at (`open_counts`,
  `tthc_core.indices.open_thresholds`);
turned into figures by the core's `tables`. That needs every dossier counted on this calendar
(`metrics_counts_basis`, `units.count_dossiers` at start-up): until then, and for a cut in the past, the
figures are computed from the stored states, as `tthc replay` does (`dossiers_at_cut`):

Every dossier's stored state is the fold of every event stored for it (units.py). So a dossier handled
in the period stands at the cut exactly as its stored state does when none of its events is at or after
the cut, or when it closed before the cut (the fold ignores what happens to a closed dossier): those are
read as they are. Only the others, still open at the cut and changed since (a report of a past cut), are
folded from their events before the cut.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, not_, or_, select, text
from sqlmodel import Session

from tthc_common.types import UtcDateTime
from tthc_contracts import parse_dossier_event
from tthc_contracts.timefmt import format_ts
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, fold
from tthc_core.indices import (
    GROUPINGS,
    Period,
    Tally,
    compute_indices,
    current_periods,
    present,
    split_by_months,
    tables,
    tally_of_counts,
)

from .models import (
    COUNT_COLUMNS,
    COUNTS_BASIS,
    OPEN_DOSSIERS,
    OPEN_INDEX,
    CountsBasis,
    DossierRow,
    GroupName,
    PartitionWatermark,
    StoredDossierEvent,
    counts_table,
)

DOSSIERS = DossierRow.__table__  # type: ignore[attr-defined]
EVENTS = StoredDossierEvent.__table__  # type: ignore[attr-defined]
WATERMARKS = PartitionWatermark.__table__  # type: ignore[attr-defined]
BASIS = CountsBasis.__table__  # type: ignore[attr-defined]
NAMES = GroupName.__table__  # type: ignore[attr-defined]

GroupKey = tuple[str, str, str, str]  # tthc_core.indices.group_keys: agency, field, procedure, channel

ROWS_PER_FETCH = 1000
GAUGE_GROUPINGS = ("agency", "field")


def one_snapshot(session: Session) -> None:
    """The reads of this transaction see one state of the store (PostgreSQL: REPEATABLE READ; SQLite's
    transactions are serialized already): the watermark, the counts and the open dossiers of one moment,
    not of batches committed in between. Call before the transaction's first statement."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def read_watermark(session: Session) -> datetime | None:
    """The latest event time seen on any stream and partition (None before the first event)."""
    return session.execute(select(func.max(WATERMARKS.c.at))).scalar()


def read_counts_basis(session: Session) -> str | None:
    """The facts_basis every dossier's `counted` agrees with (None until a start-up pass said so)."""
    return session.execute(select(BASIS.c.fingerprint).where(BASIS.c.name == COUNTS_BASIS)).scalar()


# -- a cut after every stored event: the kept counts ------------------------------------------------------
# Counts are added up as plain vectors (COUNT_COLUMNS order) by group and working-day length, and turned into
# the core's Tallies once, at the end: a year of a province is some thousands of such rows.
CountKey = tuple[str, str, str, str, int]  # the group, then the working-day length (µs)
Counts = dict[CountKey, list[int]]
HANDLED = COUNT_COLUMNS.index("handled")


def _add_counts(into: Counts, counts: Mapping[CountKey, list[int]]) -> None:
    for key, values in counts.items():
        row = into.get(key)
        if row is None:
            into[key] = list(values)
        else:
            for i, value in enumerate(values):
                row[i] += value


def month_counts(session: Session, first: date, last: date) -> dict[date, Counts]:
    """month -> the receipts' and closes' facts of that month (`first`, `last`: first days, inclusive):
    metrics_counts summed over the shards."""
    C = counts_table.c
    keys = (C.month, C.agency, C.field, C.procedure, C.channel, C.day_length_us)
    by_month: dict[date, Counts] = defaultdict(dict)
    for row in session.execute(select(*keys, *(func.sum(C[c]) for c in COUNT_COLUMNS))
                               .where(C.month >= first, C.month <= last).group_by(*keys)):
        by_month[row[0]][tuple(row[1:6])] = [int(v) for v in row[6:]]  # type: ignore[index]
    return dict(sorted(by_month.items()))


def range_counts(session: Session, begin: datetime, end: datetime) -> Counts:
    """The facts of the receipts and of the closes in [begin, end), from what each dossier adds to
    metrics_counts (`counted`): for the days of a period that are not whole months."""
    D = DOSSIERS.c
    counts: dict[CountKey, Counter[str]] = defaultdict(Counter)
    for instant, part in ((D.received_at, "received"), (D.closed_at, "closed")):
        for (counted,) in session.execute(
                select(D.counted).where(instant >= begin, instant < end, D.counted.is_not(None))
                .execution_options(yield_per=ROWS_PER_FETCH)):
            counts[tuple(counted["keys"])].update(counted[part][1])  # type: ignore[index]
    return {key: [row[c] for c in COUNT_COLUMNS] for key, row in counts.items()}


# One statement, the cut as a parameter. SQLite is told to read the partial index of the open dossiers (it
# holds every column needed): left to itself it may prefer the index on `closed_at` and read 1 M rows' pages
# for them. The WHERE clause is that index's own (models.OPEN_DOSSIERS), so both databases may use it.
_OPEN_COUNTS = """
SELECT handling_agency, field_code, procedure_code, channel, count(*),
       sum(CASE WHEN overdue_after IS NOT NULL AND overdue_after < :cut THEN 1 ELSE 0 END),
       sum(CASE WHEN i766_late_after IS NULL OR i766_late_after >= :cut THEN 1 ELSE 0 END)
FROM metrics_dossiers {hint}
WHERE {open_dossiers}
GROUP BY handling_agency, field_code, procedure_code, channel
"""


def open_counts(session: Session, cut: datetime) -> Counts:
    """`open_facts` at `cut` of every open dossier (received, not closed), `cut` being after every stored
    event: one grouped query over the thresholds of `open_thresholds` (`ix_metrics_dossiers_open`). Every
    open dossier is handled in a period that contains the cut. (Working-day length 0: no processing time.)"""
    hint = f"INDEXED BY {OPEN_INDEX}" if session.get_bind().dialect.name == "sqlite" else ""
    query = text(_OPEN_COUNTS.format(hint=hint, open_dossiers=OPEN_DOSSIERS)).bindparams(
        bindparam("cut", type_=UtcDateTime()))
    counts: Counts = {}
    for *key, handled, open_overdue, i766_on_time in session.execute(query, {"cut": cut}):
        row = dict.fromkeys(COUNT_COLUMNS, 0)
        row.update(handled=handled, open_overdue=int(open_overdue), open_within=handled - int(open_overdue),
                   i766_on_time=int(i766_on_time))
        counts[(*key, 0)] = list(row.values())  # type: ignore[index]
    return counts


def handled_tallies(book: CalendarBook, *parts: Mapping[CountKey, list[int]]) -> dict[GroupKey, Tally]:
    """The parts added up, as the core's Tallies by group (`tally_of_counts`), keeping the groups with a
    dossier handled in the period (indices.md: the groups listed; a group whose dossiers all moved away, by
    a transfer, leaves rows of zeros behind)."""
    total: Counts = {}
    for part in parts:
        _add_counts(total, part)
    tallies: dict[GroupKey, Tally] = {}
    for (*group, length), values in total.items():
        counts = dict(zip(COUNT_COLUMNS, values))
        tally = tally_of_counts(counts, {length: counts.pop("processing_us")}, group[2], book)
        key: GroupKey = tuple(group)  # type: ignore[assignment]
        if key in tallies:
            tallies[key] += tally
        else:
            tallies[key] = tally
    return {key: tally for key, tally in tallies.items() if tally.counts["handled"] > 0}


def period_tallies(session: Session, book: CalendarBook, period: Period,
                   cut: datetime) -> dict[GroupKey, Tally]:
    """Every handled group's tally of a period whose cut is after every stored event, from the counts."""
    split = split_by_months(period)
    parts: list[Counts] = []
    if split.first_month is not None and split.last_month is not None:
        parts += month_counts(session, split.first_month, split.last_month).values()
    parts += [range_counts(session, begin, end) for begin, end in split.partial]
    parts.append(open_counts(session, cut))
    return handled_tallies(book, *parts)


def kept_names(session: Session, tables_: Mapping[str, Any],
               groupings: Iterable[str]) -> dict[str, dict[str, str]]:
    """grouping -> code -> name, for the codes of the report's tables: the name the latest received dossier
    carrying the code gave it (over all shards)."""
    named = [g for g in groupings if g in NAMED]
    latest: dict[tuple[str, str], tuple[datetime, str, str]] = {}
    if named:
        for grouping, code, name, received_at, dossier_id in session.execute(
                select(NAMES.c.grouping, NAMES.c.code, NAMES.c.name, NAMES.c.received_at, NAMES.c.dossier_id)
                .where(NAMES.c.grouping.in_(named))):
            if (grouping, code) not in latest or (received_at, dossier_id) >= latest[(grouping, code)][:2]:
                latest[(grouping, code)] = (received_at, dossier_id, name)
    return {g: {code: latest[(g, code)][2] for code in sorted(tables_[f"by_{g}"]) if (g, code) in latest}
            for g in named}


def _counted_cut(session: Session, basis: str, watermark: datetime | None, cut: datetime) -> bool:
    """Whether the figures at `cut` may come from the kept counts: every dossier counted on this calendar,
    and the cut after every stored event (the present, or later)."""
    now = present(watermark)
    return now is not None and cut >= now and read_counts_basis(session) == basis


# -- any cut: the stored states ---------------------------------------------------------------------------
def _handled(p0: datetime, cut: datetime) -> Any:
    """indices.md: received before the cut and not closed before P0."""
    D = DOSSIERS.c
    return and_(D.received_at.is_not(None), D.received_at < cut,
                or_(D.closed_at.is_(None), D.closed_at >= p0))


def _changed_since(cut: datetime) -> Any:
    """Open at the cut, and an event at or after it is folded into the stored state."""
    D = DOSSIERS.c
    return and_(or_(D.closed_at.is_(None), D.closed_at >= cut), D.last_event_at >= cut)


def dossiers_at_cut(session: Session, book: CalendarBook, p0: datetime,
                    cut: datetime) -> tuple[list[Dossier], dict[str, datetime]]:
    """Every dossier handled in [p0, cut) as it stood at the cut, and the first apology.issued before it."""
    handled, changed = _handled(p0, cut), _changed_since(cut)
    dossiers = [Dossier.from_json(state) for state in session.execute(
        select(DOSSIERS.c.state).where(handled, not_(changed))
        .execution_options(yield_per=ROWS_PER_FETCH)).scalars()]
    logs = session.execute(
        select(EVENTS.c.dossier_id, EVENTS.c.payload)
        .join(DOSSIERS, DOSSIERS.c.dossier_id == EVENTS.c.dossier_id)
        .where(handled, changed, EVENTS.c.occurred_at < cut)
        .order_by(EVENTS.c.dossier_id).execution_options(yield_per=ROWS_PER_FETCH))
    for events in _by_dossier(logs):
        state, _ = fold(events, book, until=cut)
        if state is not None:
            dossiers.append(state)
    issued = dict(session.execute(
        select(DOSSIERS.c.dossier_id, DOSSIERS.c.first_apology_at)
        .where(handled, DOSSIERS.c.first_apology_at < cut)).all())
    # In replay's order: a mean of floats (avg_processing_days) summed in another order may round apart.
    dossiers.sort(key=lambda d: d.dossier_id)
    return dossiers, issued


def _by_dossier(rows: Iterable[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    current_id = None
    for dossier_id, payload in rows:
        if dossier_id != current_id and current:
            yield current
            current = []
        current_id = dossier_id
        current.append(parse_dossier_event(payload))
    if current:
        yield current


NAMED = {"agency": lambda d: (d.handling_agency.code, d.handling_agency.name),
         "field": lambda d: (d.field_code, d.field_name),
         "procedure": lambda d: (d.procedure_code, d.procedure_name)}


def group_names(dossiers: Iterable[Dossier], groupings: Iterable[str]) -> dict[str, dict[str, str]]:
    """grouping -> code -> the name the dossiers' events give it (agency, field, procedure; a channel is
    its own name). A code named differently by several dossiers takes the name of the latest received."""
    named = [g for g in groupings if g in NAMED]
    latest = sorted(dossiers, key=lambda d: (d.received_at, d.dossier_id))
    names: dict[str, dict[str, str]] = {g: {} for g in named}
    for d in latest:
        for g in named:
            code, name = NAMED[g](d)
            names[g][code] = name
    return {g: dict(sorted(names[g].items())) for g in named}


def indices_report(session: Session, book: CalendarBook, period: Period, until: datetime | None,
                   groupings: tuple[str, ...] = GROUPINGS, basis: str | None = None) -> dict[str, Any]:
    """indices.json of the period, plus `cut` (the instant the figures stand at) and `names`.

    `basis`: the service's `facts_basis(book)`; None reads every figure from the stored states."""
    one_snapshot(session)
    watermark = read_watermark(session)
    now = until if until is not None else present(watermark)
    cut = period.cut(now)
    if basis is not None and _counted_cut(session, basis, watermark, cut):
        result = tables(period_tallies(session, book, period, cut), period, groupings)
        names = kept_names(session, result, groupings)
    else:
        dossiers, issued = dossiers_at_cut(session, book, period.begins_at, cut)
        result = compute_indices(dossiers, period, cut, book, issued, groupings)
        names = group_names(dossiers, groupings)
    result["cut"] = format_ts(cut)
    result["names"] = names
    return result


def current_figures(session: Session, book: CalendarBook, basis: str | None = None,
                    ) -> tuple[dict[str, dict[str, Any]], datetime | None]:
    """period name -> indices by agency and by field at the present instant, and the watermark.

    The three periods contain the present, so they share its cut, its open dossiers and the year's month
    rows: one read of each serves the three. (`basis` None: from the stored states, the year's handled
    dossiers read once.)
    """
    one_snapshot(session)
    watermark = read_watermark(session)
    if watermark is None:
        return {}, None
    now = present(watermark)
    assert now is not None
    periods = current_periods(watermark)
    year = periods["year"]
    if basis is not None and _counted_cut(session, basis, watermark, now):
        months = month_counts(session, year.start, year.end)
        open_part = open_counts(session, now)
        return {name: tables(handled_tallies(book, open_part, *(counts for month, counts in months.items()
                                                                if period.start <= month <= period.end)),
                             period, GAUGE_GROUPINGS)
                for name, period in periods.items()}, watermark
    cut = year.cut(now)
    dossiers, issued = dossiers_at_cut(session, book, year.begins_at, cut)
    return {name: compute_indices(dossiers, period, cut, book, issued, GAUGE_GROUPINGS)
            for name, period in periods.items()}, watermark
