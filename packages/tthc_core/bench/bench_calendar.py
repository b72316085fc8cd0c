"""Due-date computations per second on one core, for a mix of units (prints figures; not a test).

Target (issue 3): >= 50,000/s. Run: .venv/bin/python packages/tthc_core/bench/bench_calendar.py
"""

import random
import time
from datetime import datetime, timedelta

from tthc_contracts import VN_TZ
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import compute_at_risk, compute_due

UNITS = ["working_days"] * 6 + ["working_hours", "calendar_days", "months"]
VALUES = {"working_days": [0.5, 1, 3, 5, 7, 10, 15, 20, 30], "working_hours": [4, 8, 16],
          "calendar_days": [5, 10, 30], "months": [1, 2, 3]}


def main(n: int = 200_000) -> None:
    cal = CalendarBook().for_agency("bench")
    rng = random.Random(1)
    base = datetime(2025, 1, 1, tzinfo=VN_TZ)
    cases = []
    for _ in range(n):
        unit = rng.choice(UNITS)
        cases.append((base + timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60)), rng.choice(VALUES[unit]), unit))
    for t, v, u in cases[:2000]:  # warm the holiday tables
        compute_due(cal, t, cal.effective_start(t), v, u)
    start = time.perf_counter()
    for t, v, u in cases:
        s = cal.effective_start(t, apply_cutoff=True)
        compute_due(cal, t, s, v, u)
    due_rate = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for t, v, u in cases:
        s = cal.effective_start(t, apply_cutoff=True)
        compute_at_risk(cal, s, compute_due(cal, t, s, v, u))
    both_rate = n / (time.perf_counter() - start)
    print(f"due dates (start + due_at), mix of 4 units: {due_rate:,.0f}/s on one core")
    print(f"due dates with their at-risk instant:        {both_rate:,.0f}/s on one core")


if __name__ == "__main__":
    main()
