"""`python -m tthc_deadline`: serve the deadline service (settings from `DEADLINE_*` variables).

A calendar file that does not load stops the service before anything starts, with its line and reason
(exit code 2).
"""

from __future__ import annotations

import sys

from tthc_common.service import service_main


def main(argv: list[str] | None = None) -> int:
    from tthc_core.calendar_config import CalendarFileError

    from .app import create_app, warm_up
    from .config import DeadlineSettings

    return service_main("deadline", argv, settings=DeadlineSettings, create_app=create_app,
                        refuse_on={CalendarFileError: "calendar_file"}, warm_up=warm_up)


if __name__ == "__main__":
    sys.exit(main())
