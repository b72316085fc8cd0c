"""Prometheus series of the metrics service.

Index figures (indices.md, "Prometheus"): one gauge per figure of `tthc_core.indices.FIGURES`, named
`tthc_index_<figure>`, e.g.

    tthc_index_on_time_rate{period="month",agency="000.00.12.H10",field=""}  0.95
    tthc_index_open_overdue{period="year",agency="",field="G13-TP05"}          3
    tthc_index_received{period="quarter",agency="",field=""}                120  (the total)

Labels are `period` (`month`, `quarter`, `year`: the current ones, those containing the watermark),
`agency` and `field`, nothing else (bounded: never a dossier, an applicant or a procedure). A series
is either the total (`agency=""`, `field=""`), one agency (`field=""`) or one field (`agency=""`);
select with `agency!=""` or `field!=""`. Rates are fractions 0-1. A figure that is undefined (a rate
with no denominator) has no series at all rather than 0; a group that has no dossier handled in the
period has none either. The gauges are recomputed from the database every refresh interval by a
background task (`GaugeRefresher`), so they cost nothing at scrape time and every replica of the
service shows the same values.

Also:
    tthc_metrics_watermark_seconds                      the latest event time seen (Unix seconds)
    tthc_index_last_refresh_timestamp_seconds           wall time when the last successful gauge refresh
                                                        began reading the database
    tthc_index_refresh_duration_seconds                 how long that refresh took
    tthc_index_refresh_failures_total                   refreshes that failed (the old values stay)
plus the service's counters (metrics.py: `tthc_metrics_consumed_events_total`, ...), FastStream's consumer
metrics (`faststream_*`), the batch consumers' (`tthc_consumer_*`) and `tthc_dead_lettered_messages_total`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from tthc_common.background import BackgroundLoop
from tthc_core.calendar import CalendarBook
from tthc_core.indices import FIGURE_HELP, FIGURES

from tthc_common.db import session_scope

from .queries import current_figures

logger = logging.getLogger("tthc.metrics.gauges")


LABELS = ("period", "agency", "field")
WHOLE = ""  # the label value of "all agencies" / "all fields"


def gauge_name(figure: str) -> str:
    return f"tthc_index_{figure}"


class IndexGauges(Collector):
    """A custom collector serving the last computed figures (replaced whole at each refresh)."""

    def __init__(self) -> None:
        self._figures: dict[str, dict[str, Any]] = {}
        self._watermark: datetime | None = None
        self._refreshed_at: float | None = None
        self._refresh_seconds: float | None = None

    def update(self, figures: dict[str, dict[str, Any]], watermark: datetime | None, read_at: float,
               took_s: float) -> None:
        """`read_at`: wall time when the refresh began reading (the figures reflect the store then)."""
        self._figures, self._watermark = figures, watermark
        self._refreshed_at, self._refresh_seconds = read_at, took_s

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()
        yield from self._status()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for period, result in self._figures.items():
            rows = [((WHOLE, WHOLE), result["total"])]
            rows += [((agency, WHOLE), row) for agency, row in result.get("by_agency", {}).items()]
            rows += [((WHOLE, field), row) for field, row in result.get("by_field", {}).items()]
            for (agency, field), row in rows:
                for figure in FIGURES:
                    value = row.get(figure)
                    if value is not None:
                        families[figure].add_metric([period, agency, field], float(value))
        yield from families.values()
        yield from self._status()

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {f: GaugeMetricFamily(gauge_name(f), FIGURE_HELP[f], labels=LABELS) for f in FIGURES}

    def _status(self) -> Iterator[Metric]:
        watermark = GaugeMetricFamily("tthc_metrics_watermark_seconds",
                                      "The latest event time the metrics service has seen")
        refreshed = GaugeMetricFamily("tthc_index_last_refresh_timestamp_seconds",
                                      "Wall time when the last successful refresh of the tthc_index_* gauges "
                                      "began reading the store")
        took = GaugeMetricFamily("tthc_index_refresh_duration_seconds",
                                 "Duration of the last successful refresh of the tthc_index_* gauges")
        if self._watermark is not None:
            watermark.add_metric([], self._watermark.timestamp())
        if self._refreshed_at is not None:
            refreshed.add_metric([], self._refreshed_at)
            took.add_metric([], self._refresh_seconds or 0.0)
        yield from (watermark, refreshed, took)


class GaugeRefresher:
    """Recomputes the gauges from the database every `interval_s` seconds (and once at start)."""

    def __init__(self, engine: Engine, book: CalendarBook, basis: str, gauges: IndexGauges, interval_s: float,
                 registry: CollectorRegistry) -> None:
        self.engine, self.book, self.basis = engine, book, basis
        self.gauges, self.interval_s = gauges, interval_s
        self.failures = Counter("tthc_index_refresh_failures", "Failed refreshes of the tthc_index_* gauges",
                                registry=registry)
        # A failed refresh keeps the old values and is tried again at the next interval.
        self._loop = BackgroundLoop("metrics-gauge-refresher", self.refresh, interval_s=interval_s,
                                    retry_delay_s=interval_s, logger=logger, failure_message=None,
                                    on_error=self._failed)

    def _compute(self) -> tuple[dict[str, dict[str, Any]], datetime | None]:
        with session_scope(self.engine) as session:
            return current_figures(session, self.book, self.basis)

    async def refresh(self) -> None:
        read_at, started = time.time(), time.perf_counter()
        figures, watermark = await anyio.to_thread.run_sync(self._compute)
        self.gauges.update(figures, watermark, read_at, time.perf_counter() - started)

    def _failed(self, exc: Exception) -> None:
        self.failures.inc()
        logger.exception("index gauges refresh failed")

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
