"""The apology service's units of work on batches (SQLite, no broker): a batch gives the same letters and
publishes the same events as the same messages one by one, whatever the batch cuts, the interleaving of
dossiers and the redeliveries; and the spec's examples give their expected apologies.

Inputs come from the pure core, as the deadline service would publish them: a simulated day of dossiers
(tthc_sim) folded by `tthc_core.deadlines.fold`; a hand-made receipt comes from tests/support/events.py.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from tthc_apology.app import MIGRATIONS_DIR
from tthc_apology.models import Apology
from tthc_apology.units import apply_deadline_events, apply_dossier_events
from tthc_common.batches import Received
from tthc_common.db import make_engine, run_migrations, session_scope
from tthc_contracts import VN_TZ, format_ts, parse_ts
from tthc_contracts.events import parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold
from tthc_core.replay import run_apologies
from tthc_sim import generate_days

from tests.support.events import CRIMINAL_RECORD, parsed, received
from tests.support.examples import apology_key, examples
from tests.support.schema import migration_differences

TOPIC = "tthc.apology-events.v1"
BOOK = CalendarBook()
DOSSIER, DEADLINE = "dossier-events", "deadline-events"
Message = tuple[str, Any]  # (topic, parsed event)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path}/apology.db"
    run_migrations(url, MIGRATIONS_DIR)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def timelines(events: list[Any], until: datetime) -> dict[str, list[Message]]:
    """Per dossier, its receipts and extensions and the deadline events the fold derives, in the order
    they happened (a derived moment at an instant before the dossier's own events of that instant)."""
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        if ev.occurred_at < until:
            by_dossier[ev.dossier_id].append(ev)
    out: dict[str, list[Message]] = {}
    for dossier_id in sorted(by_dossier):
        evs = by_dossier[dossier_id]
        state, derived = fold(evs, BOOK, until)
        if state is None:
            continue
        own = [e for e in evs if e.type in ("dossier.received", "dossier.extended")]
        timeline = sorted([(e.occurred_at, 0, i, (DEADLINE, e)) for i, e in enumerate(derived)]
                          + [(e.occurred_at, 1, i, (DOSSIER, e)) for i, e in enumerate(own)], key=lambda x: x[:3])
        out[dossier_id] = [m for *_, m in timeline]
    return out


def simulated(dossiers: int, seed: int) -> tuple[dict[str, list[Message]], list[Any]]:
    events = [parse_dossier_event(e) for e in generate_days(date(2026, 3, 2), 2, dossiers=dossiers, seed=seed)]
    return timelines(events, datetime(2026, 5, 4, tzinfo=VN_TZ)), events


def run(engine: Engine, batches: list[tuple[str, list[Any]]]) -> None:
    """Each (topic, events) batch through its unit, one transaction each, as the runners do."""
    offsets: dict[str, int] = defaultdict(int)
    for topic, events in batches:
        items = []
        for ev in events:
            items.append(Received(ev, topic, 0, offsets[topic]))
            offsets[topic] += 1
        with session_scope(engine) as session:
            if topic == DOSSIER:
                apply_dossier_events(session, items, apology_topic=TOPIC)
            else:
                apply_deadline_events(session, items, book=BOOK, apology_topic=TOPIC)


def outcome(engine: Engine) -> tuple[list[tuple[Any, ...]], dict[str, list[str]], dict[str, Any]]:
    """The letters, the published events per dossier (in outbox order) and each dossier's kept receipt."""
    with session_scope(engine) as session:
        letters = [(r.apology_id, r.dossier_id, r.kind, r.status, r.agency_code, r.agency_name, format_ts(r.due_at),
                    format_ts(r.proposed_due_at), format_ts(r.drafted_at), r.cancel_reason, format_ts(r.cancelled_at))
                   for r in session.scalars(select(Apology).order_by(Apology.apology_id))]
    with engine.connect() as connection:
        published: dict[str, list[str]] = defaultdict(list)
        for key, payload in connection.execute(text("SELECT key, payload FROM outbox ORDER BY id")):
            published[key].append(payload)
        receipts = {d: (e, x) for d, e, x in connection.execute(text(
            "SELECT dossier_id, received_event_id, extensions FROM apology_dossiers"))}
    return letters, dict(published), receipts


def one_by_one(timeline: dict[str, list[Message]]) -> list[tuple[str, list[Any]]]:
    """Every message alone, dossier after dossier (what the consumers did before batches)."""
    return [(topic, [ev]) for messages in timeline.values() for topic, ev in messages]


def shuffled_batches(timeline: dict[str, list[Message]], rng: random.Random,
                     redeliver: float = 0.15) -> list[tuple[str, list[Any]]]:
    """Dossiers interleaved at random (each dossier's own order kept, as Kafka keeps a key's order and
    as the two consumers happened to read them), cut into batches of random size (each batch from one
    topic), with some batches delivered again later and some messages twice within a batch (the copy
    after the original, as a second publication comes)."""
    pending = {d: list(messages) for d, messages in timeline.items()}
    stream: list[Message] = []
    while pending:
        dossier_id = rng.choice(sorted(pending))
        stream.append(pending[dossier_id].pop(0))
        if not pending[dossier_id]:
            del pending[dossier_id]
    batches: list[tuple[str, list[Any]]] = []
    while stream:
        topic = stream[0][0]
        size = rng.randint(1, 60)
        batch = []
        while stream and stream[0][0] == topic and len(batch) < size:
            batch.append(stream.pop(0)[1])
        if rng.random() < redeliver:  # published twice: the copy comes after the original
            original = rng.randrange(len(batch))
            batch.insert(rng.randint(original + 1, len(batch)), batch[original])
        batches.append((topic, batch))
        if batches and rng.random() < redeliver:
            batches.append(rng.choice(batches))  # read again after a restart
    return batches


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_shuffled_and_redelivered_give_what_one_by_one_gives_and_what_replay_gives(
        tmp_path: Path, seed: int) -> None:
    timeline, events = simulated(dossiers=120, seed=seed)
    results = []
    for name, batches in (("one-by-one", one_by_one(timeline)),
                          ("batches", shuffled_batches(timeline, random.Random(seed)))):
        url = f"sqlite:///{tmp_path}/{name}.db"
        run_migrations(url, MIGRATIONS_DIR)
        engine = make_engine(url)
        try:
            run(engine, batches)
            results.append(outcome(engine))
        finally:
            engine.dispose()
    (letters, published, receipts), (letters_b, published_b, receipts_b) = results
    assert letters_b == letters
    assert published_b == published
    assert receipts_b == receipts
    kinds = {(row[2], row[3]) for row in letters}
    assert {("at_risk", "draft"), ("at_risk", "cancelled"), ("overdue", "draft")} <= kinds, kinds

    # And the letters are the ones `tthc replay` drafts from the same events.
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        by_dossier[ev.dossier_id].append(ev)
    until = datetime(2026, 5, 4, tzinfo=VN_TZ)
    replayed = sorted(
        (d.apology_id, d.status, d.cancel_reason)
        for dossier_id in timeline
        for d in run_apologies(BOOK, [e for e in by_dossier[dossier_id] if e.occurred_at < until],
                               fold([e for e in by_dossier[dossier_id] if e.occurred_at < until], BOOK, until)[1]
                               ).drafts)
    assert sorted((row[0], row[3], row[9]) for row in letters) == replayed


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.name)
def test_the_spec_examples_give_their_expected_apologies_through_batches(tmp_path: Path, example: Any) -> None:
    until = parse_ts(example.args["until"])
    events = [parse_dossier_event(raw) for raw in example.events()]
    timeline = timelines(events, until)
    url = f"sqlite:///{tmp_path}/apology.db"
    run_migrations(url, MIGRATIONS_DIR)
    engine = make_engine(url)
    try:
        run(engine, shuffled_batches(timeline, random.Random(7)))
        letters, _, _ = outcome(engine)
    finally:
        engine.dispose()
    got = sorted(apology_key({"dossier_id": r[1], "kind": r[2], "status": r[3], "agency": r[4], "due_at": r[6]})
                 for r in letters)
    assert got == sorted(apology_key(row) for row in example.expected_apologies())


def test_a_batch_locks_reads_and_writes_each_dossier_once(engine: Engine) -> None:
    timeline, _ = simulated(dossiers=60, seed=5)
    deadline_events = [ev for messages in timeline.values() for topic, ev in messages if topic == DEADLINE]
    receipts = [ev for messages in timeline.values() for topic, ev in messages if topic == DOSSIER]
    run(engine, [(DOSSIER, receipts)])
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split())[:60])

    event.listen(engine, "before_cursor_execute", record)
    try:
        run(engine, [(DEADLINE, deadline_events)])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    dossiers = {ev.dossier_id for ev in deadline_events}
    assert len(dossiers) > 20
    count = lambda prefix: sum(s.startswith(prefix) for s in statements)
    assert count("INSERT INTO processed_events") == 1
    assert count("INSERT INTO apology_dossiers") == 1
    assert count("SELECT apology_dossiers") == 1
    assert count("SELECT apologies") == 1
    assert count("INSERT INTO outbox") == 1
    updates = [s for s in statements if s.startswith("UPDATE apologies")]
    assert len(updates) <= len({ev.dossier_id for ev in deadline_events if ev.type != "deadline.scheduled"}) * 3
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM processed_events")).scalar_one() == len(
            {(e.source, e.event_id) for e in deadline_events + receipts})


def test_the_earliest_receipt_is_kept_when_several_arrive_in_one_batch(engine: Engine) -> None:
    def receipt(name: str, when: str, event_id: str) -> Any:
        (ev,) = parsed(received("D-R", when, 5, procedure=CRIMINAL_RECORD, channel="online", applicant=name,
                                event_id=event_id))
        return ev

    later = receipt("Người Sau", "2026-03-03T10:00:00+07:00", "00000000-0000-4000-8000-000000000002")
    first = receipt("Người Trước", "2026-03-03T09:00:00+07:00", "00000000-0000-4000-8000-000000000003")
    tie = receipt("Cùng Giờ", "2026-03-03T09:00:00+07:00", "00000000-0000-4000-8000-000000000009")
    run(engine, [(DOSSIER, [later]), (DOSSIER, [tie, first, later])])
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT received_event FROM apology_dossiers")).scalar_one()
    assert json.loads(kept)["data"]["applicant"]["name"] == "Người Trước"  # then the smaller event_id


def test_migrations_create_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    from tthc_apology.app import MIGRATIONS_DIR

    assert migration_differences(tmp_path, MIGRATIONS_DIR, {
        "processed_events", "outbox", "apology_dossiers", "apologies", "apology_number_counters"}) == []
