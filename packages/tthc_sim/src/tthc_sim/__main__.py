"""`python -m tthc_sim --day 2026-11-23 --dossiers 300 --seed 1 > events.jsonl`"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import date

from .catalogue import province_calendar
from .day import DEFAULT_HORIZON_DAYS, DEFAULT_SOURCE, generate_day


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tthc_sim",
        description="Generate a realistic day of a provincial one-stop centre as v1 dossier events (JSON lines).",
    )
    p.add_argument("--day", type=date.fromisoformat, default=date(2026, 11, 23), help="YYYY-MM-DD (default 2026-11-23)")
    p.add_argument("--dossiers", type=int, default=300, help="dossiers arriving that day (default 300)")
    p.add_argument("--seed", type=int, default=1, help="same seed, same output (default 1)")
    p.add_argument("--source", default=DEFAULT_SOURCE, help=f"the sending system (default {DEFAULT_SOURCE})")
    p.add_argument("--calendar", help="calendar file (YAML, deadlines.md §1), as the services are given")
    p.add_argument("--print-calendar", action="store_true",
                   help="print the simulated province's calendar file (its online public services) and exit")
    p.add_argument("--horizon-days", type=int, default=DEFAULT_HORIZON_DAYS,
                   help=f"no event later than this many days after the day (default {DEFAULT_HORIZON_DAYS})")
    p.add_argument("--late-posts", type=float, default=0.03, help="share of follow-up events posted late (0.03)")
    p.add_argument("--resends", type=float, default=0.0, help="share of events posted twice, same event_id (0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_calendar:
        sys.stdout.write(province_calendar())
        return 0
    book = None
    if args.calendar:
        from tthc_core.calendar import CalendarBook
        from tthc_adapters.calendar_file import CalendarFileError, load_calendar

        try:
            book = CalendarBook(load_calendar(args.calendar))
        except CalendarFileError as exc:
            print(f"calendar refused: {exc}", file=sys.stderr)
            return 2
    events = generate_day(args.day, args.dossiers, args.seed, source=args.source, book=book,
                          horizon_days=args.horizon_days, late_posts=args.late_posts, resends=args.resends)
    out = sys.stdout
    for ev in events:
        out.write(json.dumps(ev, ensure_ascii=False) + "\n")
    kinds = Counter(ev["type"].removeprefix("dossier.") for ev in events)
    print(f"{len(events)} events, {len({e['dossier_id'] for e in events})} dossiers: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
