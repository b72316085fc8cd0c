"""The `tthc` command."""

from __future__ import annotations

import argparse
import sys

from .dvcqg import add_parser as add_dvcqg_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tthc", description="TTHC dossier deadlines, apologies and indices")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="run deadline, apology and index logic over an event log at event time")
    rp.add_argument("--events", required=True, help="event log, one v1 event per line (any order)")
    rp.add_argument("--calendar", help="calendar file (YAML, deadlines.md §1)")
    rp.add_argument("--until", required=True, help="the present instant, e.g. 2026-04-01T00:00:00+07:00")
    rp.add_argument("--from", dest="from_date", help="first day of the index period (YYYY-MM-DD)")
    rp.add_argument("--to", dest="to_date", help="last day of the index period (YYYY-MM-DD)")
    rp.add_argument("--out", required=True, help="output directory")
    add_dvcqg_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay":
        from .replay import main as replay_main

        return replay_main(args)
    if args.command == "dvcqg":
        from .dvcqg import main as dvcqg_main

        return dvcqg_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
