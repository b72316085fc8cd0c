"""The `tthc` command."""

from __future__ import annotations

import argparse
import sys

from .dvcqg import add_parser as add_dvcqg_parser


class OneLineParser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr (what to fix) and exit code 2, not the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tthc", description="TTHC dossier deadlines, apologies and indices")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="run deadline, apology and index logic over an event log at event time")
    rp.add_argument("--events", required=True, help="event log, one v1 event per line (any order)")
    rp.add_argument("--calendar", help="calendar file (YAML, deadlines.md §1)")
    rp.add_argument("--until", required=True, help="the present instant, e.g. 2026-04-01T00:00:00+07:00")
    rp.add_argument("--from", dest="from_date",
                    help="first day of the index period (YYYY-MM-DD); without --from/--to: the year of --until")
    rp.add_argument("--to", dest="to_date", help="last day of the index period (YYYY-MM-DD)")
    rp.add_argument("--out", required=True, help="output folder (created when missing)")
    rp.add_argument("--no-letters", action="store_true",
                    help="list the apology drafts without writing their DOCX letters")
    rp.add_argument("--jobs", type=int, help="processes replaying in parallel (default: one per CPU)")
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
