"""How many due dates one core computes per second (prints figures; not a test).

    .venv/bin/python services/deadline/bench/bench_due_dates.py [--n 200000] [--seed 1]

One "due-date computation" is what a dossier.received costs the deadline service's domain: the
clock's effective start (§2), the due instant (§3) and the at-risk instant (§7), on the default
calendar (holidays.VN), for receipts spread over 2025-2027 at any minute of any day (nights, weekends
and holidays included) and a mix of units. Target: >= 50,000 per second.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from datetime import datetime, timedelta

from tthc_contracts import VN_TZ
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import compute_at_risk, compute_due

# (value, unit, share of dossiers): most procedures are counted in working days.
MIX = [
    (3, "working_days", 30), (5, "working_days", 20), (10, "working_days", 15), (15, "working_days", 8),
    (0.5, "working_days", 5), (8, "working_hours", 8), (4, "working_hours", 4),
    (7, "calendar_days", 4), (30, "calendar_days", 3), (1, "months", 2), (3, "months", 1),
]


def receipts(rng: random.Random, n: int) -> list[tuple[datetime, float, str]]:
    start = datetime(2025, 1, 1, tzinfo=VN_TZ)
    span_minutes = 3 * 365 * 24 * 60
    units = [(v, u) for v, u, w in MIX for _ in range(w)]
    return [(start + timedelta(minutes=rng.randrange(span_minutes)), *rng.choice(units)) for _ in range(n)]


def run(work: list[tuple[datetime, float, str]], book: CalendarBook, with_at_risk: bool) -> float:
    cal = book.for_agency("000.00.12.H10")
    t0 = time.perf_counter()
    for received_at, value, unit in work:
        start = cal.effective_start(received_at, apply_cutoff=True)
        due = compute_due(cal, received_at, start, value, unit)
        if with_at_risk:
            compute_at_risk(cal, start, due)
    return len(work) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    work = receipts(random.Random(args.seed), args.n)
    book = CalendarBook()
    run(work[:20_000], book, True)  # warm the holiday and working-day caches
    # Chunks of 10,000: on a shared machine the median and the best chunk bracket the core's speed.
    chunks = [work[i:i + 10_000] for i in range(0, len(work), 10_000)]
    print(f"python {platform.python_version()} on {platform.machine()}, one core, {args.n} receipts, mix of "
          f"{len(MIX)} durations (working_days, working_hours, calendar_days, months), load {os.getloadavg()[0]:.1f}")
    for label, with_risk in (("start + due_at", False), ("start + due_at + at_risk_at", True)):
        rates = [run(chunk, book, with_risk) for chunk in chunks]
        print(f"{label:28s} median {statistics.median(rates):>9,.0f}/s   best {max(rates):>9,.0f}/s"
              "   (target >= 50,000/s)")


if __name__ == "__main__":
    main()
