"""The metrics service's own counters (beside the index gauges of gauges.py):

    tthc_metrics_consumed_events_total{stream,type}     events stored, by stream (dossier, deadline,
                                                        apology) and event type; redeliveries not counted
    tthc_metrics_duplicate_events_total{stream}         redelivered or re-posted events ignored
    tthc_metrics_closed_dossiers_total{agency,outcome}  closed dossiers (their first `deadline.closed`;
                                                        a close re-judged by a late event is corrected in
                                                        the tthc_index_* figures, not here) by handling
                                                        agency (`unknown` when the event names none) and
                                                        outcome (early, on_time, late)

Counted after the unit's transaction committed; counters restart at zero with the process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from .units import Stored


class MetricsServiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter("tthc_metrics_consumed_events", "Events stored, by stream and event type",
                                ["stream", "type"], registry=registry)
        self.duplicates = Counter("tthc_metrics_duplicate_events",
                                  "Events already seen and ignored, by stream", ["stream"], registry=registry)
        self.closed = Counter("tthc_metrics_closed_dossiers",
                              "Dossiers closed (deadline.closed), by handling agency and outcome",
                              ["agency", "outcome"], registry=registry)

    def stored(self, outcomes: Iterable[Stored]) -> None:
        for outcome in outcomes:
            for event_type, count in outcome.new_by_type.items():
                self.consumed.labels(outcome.stream, event_type).inc(count)
            if outcome.duplicates:
                self.duplicates.labels(outcome.stream).inc(outcome.duplicates)
            for agency, closed_as in outcome.first_closes:
                self.closed.labels(agency, closed_as).inc()
