"""A deterministic day at a provincial one-stop centre, as v1 dossier events (demo, benchmark, e2e tests).

    from tthc_sim import generate_day
    events = generate_day(date(2026, 11, 23), dossiers=300, seed=1)   # JSON-ready dicts, arrival order

`python -m tthc_sim --day 2026-11-23 --dossiers 300 --seed 1 > events.jsonl` writes the same as JSON lines.
`province_calendar()` (`python -m tthc_sim --print-calendar`) is the province's calendar file: the
procedures it offers as online public services, for the `online_*` figures.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .catalogue import province_calendar
from .day import DEFAULT_HORIZON_DAYS, DEFAULT_SOURCE, generate_day

__all__ = ["DEFAULT_HORIZON_DAYS", "DEFAULT_SOURCE", "generate_day", "generate_days", "province_calendar"]


def generate_days(first: date, days: int, dossiers: int = 300, seed: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
    """Several consecutive days (working or not), merged in arrival order (for the benchmark)."""
    from tthc_contracts import parse_ts

    merged: list[dict[str, Any]] = []
    for i in range(days):
        merged.extend(generate_day(first + timedelta(days=i), dossiers, seed, **kwargs))
    # Python's sort is stable: events of one instant keep each day's own order.
    merged.sort(key=lambda ev: parse_ts(ev["occurred_at"]))
    return merged
