"""`python -m tthc_deadline`: serve the deadline service (settings from `DEADLINE_*` variables).

A calendar file that does not load stops the service before anything starts, with its line and reason
(exit code 2).
"""

from __future__ import annotations

import sys

from tthc_common.service import run_service
from tthc_core.calendar_config import CalendarFileError

from .app import create_app, warm_up
from .config import DeadlineSettings


def main() -> int:
    settings = DeadlineSettings()
    try:
        app = create_app(settings)
    except CalendarFileError as exc:
        print(f"deadline service not started: calendar refused: {exc}", file=sys.stderr)
        return 2
    warm_up(app)
    run_service(app, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
