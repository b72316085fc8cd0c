"""The incremental path (`apply_in_order` when events arrive in order, a fold of the log otherwise) gives
exactly the state and the derived events of `fold` over the whole log, whatever the arrival order.

This is the rule the deadline and metrics services rely on to apply most events to a stored state instead
of re-folding a dossier's whole log for each of them.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tthc_contracts import parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, apply_in_order, event_order_key, fold, in_order
from tthc_sim import generate_day

BOOK = CalendarBook()
# A simulated day of 120 dossiers with every kind of event (supplementation, pauses, transfers, extensions,
# late and resent posts), grouped by dossier.
_EVENTS = [parse_dossier_event(e) for e in generate_day(date(2026, 3, 2), 120, seed=7, resends=0.05)]
DOSSIERS: dict[str, list] = {}
for _e in _EVENTS:
    DOSSIERS.setdefault(_e.dossier_id, []).append(_e)
IDS = sorted(DOSSIERS)


def incremental(arrivals: list[list], advance_to) -> tuple[Dossier | None, list]:
    """What a service does: batches arrive; each is applied to the stored state when it comes after it,
    else the dossier is re-folded from its log with the keys already published."""
    log: list = []
    state: Dossier | None = None
    published: list = []
    for batch in arrivals:
        log.extend(batch)
        if state is not None and in_order(state, batch):
            published += apply_in_order(state, batch, BOOK, advance_to=advance_to)
        else:
            state, out = fold(log, BOOK, emitted=state.emitted if state else (), advance_to=advance_to)
            published += out
    return state, published


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dossier=st.sampled_from(IDS), data=st.data(), hours=st.integers(min_value=0, max_value=24 * 40))
def test_any_arrival_order_gives_the_fold(dossier, data, hours):
    events = DOSSIERS[dossier]
    order = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=max(1, len(order) - 1)), max_size=4)))
    arrivals = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)]) if order[a:b]]
    last = max(e.occurred_at for e in events)
    advance_to = last + timedelta(hours=hours)

    expected, expected_out = fold(events, BOOK, advance_to=advance_to)
    state, published = incremental(arrivals, advance_to)

    if expected is None:
        assert state is None
        return
    assert state is not None
    assert state.row() == expected.row()
    assert state.to_json() == expected.to_json() | {"emitted": state.to_json()["emitted"]}
    # Every derived event of the fold was published once; an early arrival order may also have published
    # moments a later event then made moot (an at-risk before a late-posted close): never a duplicate. A
    # close re-judged by a late event is published again, numbered: the last one says what the fold says.
    ids = [e.event_id for e in published]
    assert len(ids) == len(set(ids))
    assert {e.event_id for e in expected_out if e.type != "deadline.closed"} <= set(ids)
    closes = [e.data for e in published if e.type == "deadline.closed"]
    expected_closes = [e.data for e in expected_out if e.type == "deadline.closed"]
    assert closes[-1:] == expected_closes[-1:]


def test_in_order_arrival_never_refolds():
    """Events posted in event order are all applied to the stored state (the cheap path)."""
    refolds = 0
    for dossier in IDS:
        # a service drops a resent event (same source and event_id) before: it is processed already
        events = sorted({(e.source, e.event_id): e for e in DOSSIERS[dossier]}.values(), key=event_order_key)
        state = None
        for ev in events:
            if state is not None and in_order(state, [ev]):
                apply_in_order(state, [ev], BOOK)
            else:
                if state is not None:
                    refolds += 1
                state, _ = fold(events[: events.index(ev) + 1], BOOK)
        expected, _ = fold(events, BOOK)
        assert (state.row() if state else None) == (expected.row() if expected else None)
    assert refolds == 0
